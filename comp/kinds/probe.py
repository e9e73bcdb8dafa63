"""`model.kind: probe`: a linear probe on a frozen encoder. `model.backbone` (pretrained weights,
never fine-tuned) embeds every train and test row once, pooled as `model.pooling` says (the [CLS]
vector or the mean over real tokens); each fold then fits a multinomial logistic regression
(scikit-learn, L2, `probe.c`, `probe.class_weight`) on its training rows' vectors, standardised
with the training rows' mean and spread. Its logits (decision function) go out like any kind's.

With a real pretrained encoder (ARBERTv2) this is a fast baseline: one forward pass over the data
and a convex fit per fold, and its errors differ from a fine-tuned model's, so it mixes well in
an ensemble. On the demo's randomly initialised tiny backbone it scores low, as expected.

- The vectors are cached in the experiment's cache folder, keyed by the backbone (its content
  hash when it is a folder), the tokenizer, the texts and the input settings: folds, reruns and
  `comp predict` embed a row once.
- The fold's model (`probe_model.npz`: coefficients, intercepts, the classes it saw, the
  standardisation, and the backbone's hash) is plain arrays; `predict` refuses a fold whose
  local backbone folder has changed since it was fitted.
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
from comp.kinds import FoldFit, RunInputs
from comp.layout import retrain_command
from comp.neural.files import backbone_sha256
from comp.progress import StepProgress

MODEL_FILE = "probe_model.npz"
MODEL_FORMAT = 1
ABSENT_SCORE = -1.0e4  # the logit of a class that had no training rows in the fold
EMBEDDING_KEYS = (
    "backbone",
    "max_len",
    "answer_min_tokens",
    "pooling",
    "lowercase",
    "strip_accents",
)


@dataclass
class ProbeConfig:
    """model.kind: probe, a logistic regression on a frozen model.backbone's vectors."""

    c: float = 1.0  # inverse L2 regularisation strength of the logistic regression
    class_weight: str = "balanced"  # balanced | none
    max_iter: int = 1000  # lbfgs iterations at most


def checks(config: Config) -> list[tuple[bool, str]]:
    p = config.probe
    return [
        (p.c > 0, "probe.c must be positive"),
        (p.class_weight in ("balanced", "none"), "probe.class_weight: balanced or none"),
        (p.max_iter >= 1, "probe.max_iter must be at least 1"),
    ]


SECTION = Section("probe", ProbeConfig, checks)
USES_BACKBONE = True  # model.backbone is the frozen encoder
ENCODER_FOLDS = False  # its folds hold a linear model, not an encoder
FOLD_FILES = (MODEL_FILE,)
SCRATCH_FILES = ()


def shaping_config(config: Config, content: bool = True) -> dict:
    """What the vectors depend on (the encoder, its inputs, the precision on a GPU) and the
    probe's own keys."""
    model = {key: getattr(config.model, key) for key in EMBEDDING_KEYS}
    if content and (sha256 := backbone_sha256(config.model.backbone)):
        model["backbone_sha256"] = sha256
    return {
        "model": model,
        "probe": dataclasses.asdict(config.probe),
        "train": {"precision": config.train.precision},
    }


def derived_configs(config: Config) -> list[Config]:
    return []


# ---------------------------------------------------------------------------------------------
# Vectors


class Encoder:
    """The frozen backbone and its tokenizer, embedding question/answer pairs through a cache.
    The backbone folder is hashed once (`backbone_hash`) and the model loaded only when some
    rows are not in the cache."""

    def __init__(self, config: Config, device_name: str, cache_dir: Path) -> None:
        from comp.neural.backbone import load_tokenizer, tokenizer_options
        from comp.neural.distributed import resolve_device
        from comp.neural.inference import Batching
        from comp.neural.token_cache import tokenizer_fingerprint

        self.config, self.cache_dir = config, Path(cache_dir)
        self.device = resolve_device(device_name)
        model = config.model
        self.tokenizer = load_tokenizer(model.backbone, tokenizer_options(model))
        self._encoder = None
        self.batching = Batching.of(config, self.tokenizer.pad_token_id, self.device)
        self.backbone_hash = backbone_sha256(model.backbone)
        self.identity = {
            "backbone": model.backbone,
            "backbone_sha256": self.backbone_hash,
            "tokenizer": tokenizer_fingerprint(self.tokenizer),
            **{key: getattr(model, key) for key in EMBEDDING_KEYS[1:]},
            "precision": config.train.precision if self.device.type == "cuda" else "fp32",
        }

    @property
    def encoder(self):
        if self._encoder is None:
            from comp.neural.backbone import load_pretrained_backbone

            backbone = load_pretrained_backbone(self.config.model.backbone)
            self._encoder = backbone.to(self.device).eval()
        return self._encoder

    def _path(self, questions: list[str], answers: list[str]) -> Path:
        from comp.neural.token_cache import pairs_key

        return self.cache_dir / f"probe-vectors-{pairs_key(self.identity, questions, answers)}.npy"

    def embed(self, questions: list[str], answers: list[str], console: Console) -> np.ndarray:
        """float32 [rows, hidden] vectors, from the cache when these rows were embedded before."""
        from comp.neural.inference import embed_texts

        path = self._path(questions, answers)
        if path.is_file():
            return np.load(path, allow_pickle=False)
        started = time.perf_counter()
        with StepProgress(console, "probe: embedding", len(questions), unit="row") as progress:

            def done(rows: int) -> None:
                rate = rows / max(time.perf_counter() - started, 1e-9)
                progress.update(rows, f"{rate:.1f} rows/s")

            vectors = embed_texts(
                self.encoder, self.tokenizer, questions, answers, self.config, self.batching,
                self.config.model.pooling, self.cache_dir, normalize=False, done=done,
                fingerprint=self.identity["tokenizer"],
            )  # fmt: skip
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, vectors)
        return vectors


# ---------------------------------------------------------------------------------------------
# The linear model


@dataclass
class Probe:
    classes: np.ndarray  # [present] int64: the classes the fold's training rows hold
    coef: np.ndarray  # [present, hidden] float32
    intercept: np.ndarray  # [present] float32
    mean: np.ndarray  # [hidden] float32: the training rows' mean ...
    scale: np.ndarray  # ... and spread, for standardising


def fit_probe(x: np.ndarray, y: np.ndarray, cfg: ProbeConfig) -> Probe:
    """A multinomial logistic regression on standardised vectors."""
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(y)
    if len(classes) < 2:
        raise CompError("probe: the training rows hold fewer than two classes")
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    weight = "balanced" if cfg.class_weight == "balanced" else None
    model = LogisticRegression(C=cfg.c, class_weight=weight, max_iter=cfg.max_iter)
    model.fit((x - mean) / scale, y)
    f32 = np.float32
    return Probe(
        classes.astype(np.int64),
        model.coef_.astype(f32),
        model.intercept_.astype(f32),
        mean.astype(f32),
        scale.astype(f32),
    )


def probe_logits(probe: Probe, x: np.ndarray, num_labels: int) -> np.ndarray:
    """[rows, num_labels] float32; ABSENT_SCORE for classes the fold never saw."""
    logits = np.full((len(x), num_labels), ABSENT_SCORE, dtype=np.float32)
    logits[:, probe.classes] = ((x - probe.mean) / probe.scale) @ probe.coef.T + probe.intercept
    return logits


def save_probe(probe: Probe, path: Path, backbone_hash: str) -> None:
    """The probe as plain arrays, with the content hash of the backbone folder it was fitted on
    ("" for a hub id)."""
    arrays = {name: getattr(probe, name) for name in ("classes", "coef", "intercept", "mean",
                                                     "scale")}  # fmt: skip
    sha256 = np.frombuffer(backbone_hash.encode("ascii"), dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, format=np.asarray(MODEL_FORMAT), backbone_sha256=sha256, **arrays)


def load_probe(path: Path, backbone: str, backbone_hash: str) -> Probe:
    """The fold's probe, read without pickle; a CompError when it is missing, damaged, or was
    fitted on another version of the local backbone folder (its hash now: `backbone_hash`)."""
    retrain = retrain_command(path.parent)
    if not path.is_file():
        raise CompError(f"{path}: not found; train this fold first (`{retrain}`)")
    arrays = read_npz(path, retrain)
    fields = [f.name for f in dataclasses.fields(Probe)]
    if int(arrays.get("format", -1)) != MODEL_FORMAT or any(f not in arrays for f in fields):
        raise UnreadableFile(path, f"not a probe model of format {MODEL_FORMAT}", retrain)
    if arrays["backbone_sha256"].tobytes().decode("ascii") != backbone_hash:
        raise CompError(
            f"{path}: fitted on another version of the backbone folder {backbone}; retrain the "
            f"fold (`{retrain}`)"
        )
    return Probe(**{f: arrays[f] for f in fields})


# ---------------------------------------------------------------------------------------------
# The model kind (comp.kinds)


class ProbeRun:
    def __init__(self, inputs: RunInputs, device: str, console: Console) -> None:
        self.inputs, self.console = inputs, console
        encoder = Encoder(inputs.config, device, inputs.cache_dir)
        train = inputs.train
        self.train, self.tests = np.empty((0, 0), np.float32), []
        if inputs.writes:  # torchrun ranks other than 0 fit nothing (fit_fold)
            self.train = encoder.embed(train.questions, train.answers, console)
            self.tests = [encoder.embed(t.questions, t.answers, console) for t in inputs.tests]
        self.device, self.backbone_hash = str(encoder.device), encoder.backbone_hash

    def fit_fold(self, fold: int, out: Path, events: Events) -> FoldFit | None:
        if not self.inputs.writes:
            return None
        config, labels = self.inputs.config, self.inputs.train.labels
        rows, val_rows = self.inputs.train_rows(fold), self.inputs.val_rows(fold)
        started = time.perf_counter()
        probe = fit_probe(self.train[rows], labels[rows], config.probe)
        fit_s = time.perf_counter() - started
        num_labels = config.data.num_labels
        save_probe(probe, out / MODEL_FILE, self.backbone_hash)
        return FoldFit(
            probe_logits(probe, self.train[val_rows], num_labels),
            [probe_logits(probe, x, num_labels) for x in self.tests],
            samples_per_s=len(rows) / max(fit_s, 1e-9),  # rows fitted a second
            extra={"fit_s": fit_s, "device": self.device, "dimensions": int(probe.coef.shape[1])},
        )

    def close(self) -> None:
        pass


def start(inputs: RunInputs, device: str | None, console: Console) -> ProbeRun:
    return ProbeRun(inputs, device or inputs.config.train.device, console)


def predict(
    folder: Path, config: Config, tests: list[TestData], device: str, cache_dir: Path
) -> list[np.ndarray]:
    encoder = Encoder(config, device, cache_dir)
    probe = load_probe(Path(folder) / MODEL_FILE, config.model.backbone, encoder.backbone_hash)
    quiet = Console(quiet=True)
    return [
        probe_logits(probe, encoder.embed(t.questions, t.answers, quiet), config.data.num_labels)
        for t in tests
    ]
