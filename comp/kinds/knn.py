"""`model.kind: knn`: k-nearest-neighbour class scores from a finished transformer fold's encoder,
as an experiment of its own (`<experiment>_knn`) that `comp ensemble` mixes like any other.

With `knn.enabled: true`, `comp train` derives it from the transformer experiment it has just
trained (`derived_configs`); `model.kind: knn` with
`knn.base_experiment: X` derives it from any finished transformer experiment X.

For fold K, the fold's fine-tuned encoder embeds the fold's training rows (the index: every row
outside validation fold K, train-only rows included) and the validation and test rows (the
queries), as the classifier's head reads them (the [CLS] vector or the mean over tokens, as
`model.pooling` says) or as `knn.pooling` says otherwise, L2-normalised. A query's
score for class c is the softmax weight, over its `knn.k` most similar index rows (cosine,
divided by `knn.temperature`), of those labelled c; its logits are the log of these scores.
Index and queries never overlap: no row retrieves itself or any row of its own validation fold.
The index (vectors and labels) is saved in the fold's folder, so `comp predict` adds late test
sets from the folder alone (with the base fold's encoder).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from comp.config import Config, Section
from comp.data import TestData
from comp.errors import CompError
from comp.events import Events
from comp.io import UnreadableFile, atomic_path, read_npz
from comp.kinds import FoldFit, RunInputs, get_kind, load_config
from comp.layout import CONFIG, experiment_dir, fold_dir, retrain_command

INDEX = "knn_index.npz"  # the fold's index: vectors [rows, hidden] float16 and labels
SUFFIX = "_knn"
FLOOR = 1e-6  # the score of a class no neighbour has: logits stay finite


@dataclass
class KnnConfig:
    """kNN retrieval over a transformer fold's training rows, as the experiment
    <experiment>_knn (model.kind: knn)."""

    enabled: bool = False  # comp train also derives <train.experiment>_knn from the transformer
    base_experiment: str = ""  # model.kind knn: the transformer experiment to retrieve with
    k: int = 20  # neighbours a query's class scores come from
    temperature: float = 0.05  # softmax over the neighbours' cosine similarities divided by it
    pooling: str = "head"  # head (as model.pooling) | cls | mean (over real tokens)


def checks(config: Config) -> list[tuple[bool, str]]:
    knn = config.knn
    return [
        (knn.k >= 1, "knn.k must be at least 1"),
        (knn.temperature > 0, "knn.temperature must be positive"),
        (knn.pooling in ("head", "cls", "mean"), "knn.pooling: head, cls or mean"),
    ]


SECTION = Section("knn", KnnConfig, checks)
USES_BACKBONE = False  # it embeds with the base experiment's fine-tuned folds
ENCODER_FOLDS = False
FOLD_FILES = (INDEX,)
SCRATCH_FILES = ()


def derived_configs(config: Config) -> list[Config]:
    """With knn.enabled, the experiment <experiment>_knn that retrieves with the folds of the
    experiment `config` has just trained (a kind whose folds hold an encoder)."""
    if not config.knn.enabled or not get_kind(config.model.kind).ENCODER_FOLDS:
        return []
    experiment = config.train.experiment
    return [
        dataclasses.replace(
            config,
            model=dataclasses.replace(config.model, kind="knn"),
            train=dataclasses.replace(config.train, experiment=f"{experiment}{SUFFIX}"),
            knn=dataclasses.replace(config.knn, enabled=False, base_experiment=experiment),
        )
    ]


def base_config(config: Config) -> Config:
    """The transformer experiment's config this kNN experiment derives from."""
    base = config.knn.base_experiment
    if not base:
        raise CompError("model.kind knn: set knn.base_experiment (the transformer experiment)")
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, kind="transformer"),
        train=dataclasses.replace(config.train, experiment=base),
    )


def resolve_pooling(pooling: str, base: Config) -> str:
    """What the vectors are: `head` is what the base fold's classifier reads (`model.pooling`)."""
    return base.model.pooling if pooling == "head" else pooling


def trained_base_config(config: Config) -> Config:
    """The base experiment's config as its lowest-numbered fold saved it (what its encoders
    were trained with); before any fold of it exists, as `base_config` derives it."""
    base = base_config(config)
    saved = experiment_dir(base).glob(f"fold*/{CONFIG}")
    folds = {int(p.parent.name[4:]): p for p in saved if p.parent.name[4:].isdigit()}
    return load_config([folds[min(folds)]]) if folds else base


def shaping_config(config: Config, content: bool = True) -> dict:
    """The kNN keys and the base experiment's shaping keys as its folds were trained, so that
    a base retrained under other settings makes these folds stale."""
    base = trained_base_config(config)
    base_kind = get_kind(base.model.kind)
    knn = {k: v for k, v in dataclasses.asdict(config.knn).items() if k != "enabled"}
    knn["pooling"] = resolve_pooling(knn["pooling"], base)  # `head` over a [CLS] head is `cls`
    return {"knn": knn, "base": base_kind.shaping_config(base, content)}


# ---------------------------------------------------------------------------------------------
# Scores


def knn_log_scores(
    index: np.ndarray,
    index_labels: np.ndarray,
    queries: np.ndarray,
    num_labels: int,
    k: int,
    temperature: float,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """(log class scores [queries, num_labels], the index positions of each query's k
    neighbours [queries, k]) for L2-normalised vectors."""
    k = min(k, len(index))
    logits = np.zeros((len(queries), num_labels), dtype=np.float32)
    neighbours = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ index.T  # cosine: both sides are unit vectors
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1) / temperature
        weights = np.exp(top_sims - top_sims.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        scores = np.zeros((len(top), num_labels), dtype=np.float64)
        np.add.at(scores, (np.arange(len(top))[:, None], index_labels[top]), weights)
        logits[start : start + chunk] = np.log(np.maximum(scores, FLOOR))
        neighbours[start : start + chunk] = top
    return logits, neighbours


def save_index(path: Path, vectors: np.ndarray, labels: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, vectors=vectors.astype(np.float16), labels=labels.astype(np.int64))


def load_index(path: Path) -> tuple[np.ndarray, np.ndarray]:
    retrain = retrain_command(path.parent)
    saved = read_npz(path, retrain)
    if "vectors" not in saved or "labels" not in saved:
        raise UnreadableFile(path, "not a kNN index (vectors, labels)", retrain)
    return saved["vectors"].astype(np.float32), saved["labels"]


# ---------------------------------------------------------------------------------------------
# The model kind (comp.kinds)


def load_base_fold(base: Config, fold: int, device):
    """The base experiment's fold: its fine-tuned encoder, resolved config and tokenizer."""
    from comp.neural.fold_encoder import load_fold_encoder

    folder = fold_dir(base, fold)
    if not (folder / CONFIG).is_file():
        raise CompError(
            f"{folder}: fold {fold} of {base.train.experiment} is not trained; run "
            f"`comp train --fold {fold} --set train.experiment={base.train.experiment}`"
        )
    fold_config = load_config([folder / CONFIG])
    encoder, tokenizer = load_fold_encoder(folder, device)
    return encoder, fold_config, tokenizer


class KnnRun:
    def __init__(self, inputs: RunInputs, device: str) -> None:
        from comp.neural.distributed import resolve_device

        self.inputs, self.device = inputs, resolve_device(device)
        self.base = base_config(inputs.config)

    def fit_fold(self, fold: int, out: Path, events: Events) -> FoldFit | None:
        if not self.inputs.writes:
            return None
        cfg, inputs = self.inputs.config.knn, self.inputs
        model, fold_config, tokenizer = load_base_fold(self.base, fold, self.device)
        started = time.perf_counter()
        embed = _embedder(model, fold_config, tokenizer, self.device, cfg.pooling, inputs.cache_dir)
        train_rows, val_rows = inputs.train_rows(fold), inputs.val_rows(fold)
        all_train = embed(inputs.train.questions, inputs.train.answers)
        # scored as saved (float16), so that `predict` reproduces the fold's test logits
        index = all_train[train_rows].astype(np.float16).astype(np.float32)
        index_labels = inputs.train.labels[train_rows]
        num_labels = inputs.config.data.num_labels

        def scores(vectors: np.ndarray) -> np.ndarray:
            return knn_log_scores(index, index_labels, vectors, num_labels, cfg.k,
                                  cfg.temperature)[0]  # fmt: skip

        val = scores(all_train[val_rows])
        tests = [scores(embed(t.questions, t.answers)) for t in inputs.tests]
        save_index(out / INDEX, index, index_labels)
        seconds = max(time.perf_counter() - started, 1e-9)
        rows = len(inputs.train) + sum(len(t) for t in inputs.tests)
        return FoldFit(
            val,
            tests,
            samples_per_s=rows / seconds,  # rows embedded and scored
            extra={
                "base_experiment": self.base.train.experiment,
                "k": cfg.k,
                "pooling": resolve_pooling(cfg.pooling, fold_config),
                "index_rows": len(train_rows),
                "device": str(self.device),
            },
        )

    def close(self) -> None:
        pass


def _embedder(encoder, fold_config: Config, tokenizer, device, pooling: str, cache_dir: Path):
    """questions, answers -> unit vectors, with the base fold's tokenizer and input settings."""
    from comp.neural.inference import Batching, embed_texts

    batching = Batching.of(fold_config, tokenizer.pad_token_id, device)
    pooling = resolve_pooling(pooling, fold_config)

    def embed(questions: list[str], answers: list[str]) -> np.ndarray:
        return embed_texts(
            encoder, tokenizer, questions, answers, fold_config, batching, pooling, cache_dir
        )

    return embed


def start(inputs: RunInputs, device: str | None, console: Console) -> KnnRun:
    return KnnRun(inputs, device or inputs.config.train.device)


def predict(
    folder: Path, config: Config, tests: list[TestData], device: str, cache_dir: Path
) -> list[np.ndarray]:
    """Late test sets: the base fold's encoder embeds them, the saved index scores them."""
    from comp.neural.distributed import resolve_device

    fold, torch_device = int(Path(folder).name.removeprefix("fold")), resolve_device(device)
    model, fold_config, tokenizer = load_base_fold(base_config(config), fold, torch_device)
    embed = _embedder(model, fold_config, tokenizer, torch_device, config.knn.pooling, cache_dir)
    index, labels = load_index(Path(folder) / INDEX)
    k, temperature, num_labels = config.knn.k, config.knn.temperature, config.data.num_labels
    return [
        knn_log_scores(index, labels, embed(t.questions, t.answers), num_labels, k, temperature)[0]
        for t in tests
    ]
