"""Train one model per fold with the seed paper's recipe, resumably.

Read it top to bottom: `train_folds` loads the data, the folds and the token ids once, then
`train_fold` runs the loop for each fold: length-bucketed batches, CE then LDAM/DRW, FGM on the
word embeddings, LLRD AdamW with warmup and linear decay, evaluation every `eval_every` steps,
the best model kept, a checkpoint every `checkpoint_every` steps. When the loop ends, the best
model's validation (out-of-fold) and test logits are written beside the resolved config.
"""

from __future__ import annotations

import gc
import json
import os
import random
import resource
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from comp.adversarial import FGM
from comp.backbone import load_tokenizer
from comp.config import Config, training_fingerprint, write_config
from comp.data import TestData, TrainData, load_tests, load_train
from comp.distributed import SINGLE, Dist, setup, shard, teardown, wrap
from comp.encoding import length_bucketed_batches, pad_batch
from comp.errors import CompError
from comp.features import EncodedTexts, encode_cached, tokenizer_fingerprint
from comp.fold_outputs import METRICS, write_fold_outputs
from comp.folds import folds_paths, load_folds
from comp.io import atomic_path, sha256_file, write_all_atomically
from comp.losses import drw_class_weights, ldam_margins, recipe_loss
from comp.metrics import macro_f1
from comp.model import Classifier, build_classifier
from comp.optim import linear_warmup_decay, llrd_param_groups

CHECKPOINT = "checkpoint.pt"
BEST_MODEL = "best_model.pt"


@dataclass
class RunData:
    """Everything a fold needs, loaded and tokenised once per run."""

    train: TrainData
    tests: list[TestData]
    folds: np.ndarray
    folds_sha256: str  # every model of an ensemble must come from the same folds
    encoded_train: EncodedTexts
    encoded_tests: list[EncodedTexts]
    tokenizer: object


def resolve_device(name: str) -> torch.device:
    """The torch device for `name` (auto, cpu, cuda, cuda:N); a CUDA device is made current, so
    that pinned copies and caches do not open a context on GPU 0 as well."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CompError(f"--device {name}: CUDA is not available on this machine")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def experiment_dir(config: Config) -> Path:
    return Path(config.train.runs_dir) / config.train.experiment


def fold_dir(config: Config, fold: int) -> Path:
    return experiment_dir(config) / f"fold{fold}"


def finished_metrics(
    config: Config, fold: int, folds_sha256: str, train_sha256: str
) -> dict | None:
    """The fold's metrics if it finished on the current train file, folds and training config;
    None if it must (re)train."""
    path = fold_dir(config, fold) / METRICS
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    made_with = ("folds_sha256", "train_sha256", "config_sha256")
    now = (folds_sha256, train_sha256, training_fingerprint(config))
    return metrics if tuple(metrics.get(key) for key in made_with) == now else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_run_data(config: Config) -> RunData:
    train = load_train(config.data)
    folds = load_folds(config, train)
    folds_sha256 = sha256_file(folds_paths(config)[0])
    tests = load_tests(config)
    tokenizer = load_tokenizer(config.model.backbone)
    fingerprint = tokenizer_fingerprint(tokenizer)
    cache = experiment_dir(config) / "cache"

    def encode(questions, answers):
        return encode_cached(
            tokenizer,
            questions,
            answers,
            config.model.max_len,
            config.model.answer_min_tokens,
            cache,
            fingerprint,
        )

    return RunData(
        train=train,
        tests=tests,
        folds=folds,
        folds_sha256=folds_sha256,
        encoded_train=encode(train.questions, train.answers),
        encoded_tests=[encode(t.questions, t.answers) for t in tests],
        tokenizer=tokenizer,
    )


# ---------------------------------------------------------------------------------------------
# Batches


def collate(
    encoded: EncodedTexts,
    rows,
    pad_id: int,
    device: torch.device,
    multiple: int = 1,
    limit: int = 0,
) -> dict:
    """The model inputs of `rows`, padded (see `pad_batch` for `multiple` and `limit`)."""
    rows = list(rows)
    ids, types = zip(*(encoded.row(i) for i in rows), strict=True)
    input_ids, mask = pad_batch([x.tolist() for x in ids], pad_id, multiple, limit)
    token_types, _ = pad_batch([x.tolist() for x in types], 0, multiple, limit)
    tensors = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_types}
    if device.type == "cuda":  # pinned + non_blocking: the copy does not wait for the GPU
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in tensors.items()}
    return {k: v.to(device) for k, v in tensors.items()}


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, fold: int, epoch: int):
    """The batches of one epoch, a pure function of (seed, fold, epoch): resuming at any step
    replays exactly the data order of an uninterrupted run."""
    rng = np.random.default_rng([seed, fold, epoch])
    return length_bucketed_batches(lengths, batch_size, rng)


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def predict_logits(
    model: Classifier,
    encoded: EncodedTexts,
    rows: np.ndarray,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    scale: float,
) -> np.ndarray:
    """Logits (times the loss's scale s) of `rows`, in the order given; batched by length."""
    model.eval()
    rows = np.asarray(rows)
    order = np.argsort(encoded.lengths[rows], kind="stable")
    out = np.zeros((len(rows), model.head.weight.shape[0]), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        part = order[start : start + batch_size]
        with autocast(device):
            logits = model(**collate(encoded, rows[part], pad_id, device))
        out[part] = (scale * logits.float()).cpu().numpy()
    return out


# ---------------------------------------------------------------------------------------------
# Checkpoints


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_torch(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# ---------------------------------------------------------------------------------------------
# One fold


@dataclass
class FoldResult:
    fold: int
    macro_f1: float
    best_step: int
    wall_s: float
    samples_per_s: float
    tokens_per_s: float
    skipped: bool = False


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}"),
        TextColumn("{task.fields[rate]:.1f} samples/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def train_fold(
    config: Config,
    data: RunData,
    fold: int,
    device: torch.device,
    console: Console,
    dist: Dist = SINGLE,
) -> FoldResult | None:
    """Train one fold; under torchrun every rank calls this and rank 0 alone writes (and
    returns the result; other ranks return None)."""
    cfg, out = config.train, fold_dir(config, fold)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        write_all_atomically({out / "config.yaml": lambda p: write_config(config, p)})
    started = time.perf_counter()
    seed_everything(cfg.seed)

    labels = data.train.labels
    train_rows = np.flatnonzero(data.folds != fold)  # train-only rows (fold -1) included
    val_rows = np.flatnonzero(data.folds == fold)
    counts = np.bincount(labels[train_rows], minlength=config.data.num_labels)
    margins = ldam_margins(
        counts,
        C=cfg.ldam_c,
        max_m=cfg.ldam_max_m,
        boost_classes=cfg.boost_classes,
        boost_factor=cfg.boost_factor,
    ).to(device)
    weights = drw_class_weights(counts, beta=cfg.drw_beta).to(device)

    model = build_classifier(config, pretrained=True).to(device)
    net = wrap(model, dist, device)  # what the training passes go through (DDP across ranks)
    if cfg.compile:  # lengths vary batch to batch: one graph with a symbolic length
        net = torch.compile(net, dynamic=True)
    if dist.main:
        _save_backbone_files(model, data.tokenizer, out / "backbone")
    optimizer = torch.optim.AdamW(
        llrd_param_groups(model, cfg.lr, cfg.llrd_decay, cfg.weight_decay),
        lr=cfg.lr,
        fused=device.type == "cuda",
    )
    scheduler = linear_warmup_decay(optimizer, cfg.steps, cfg.warmup_ratio)
    fgm = FGM(model) if cfg.fgm else None
    pad_id = data.tokenizer.pad_token_id
    row_lengths = data.encoded_train.lengths
    lengths = row_lengths[train_rows]
    batches_per_epoch = len(epoch_batches(lengths, cfg.batch_size, cfg.seed, fold, 0))

    step, best = 0, {"score": -1.0, "step": 0}
    history: list[dict] = []
    checkpoint_path, best_path = out / CHECKPOINT, out / BEST_MODEL
    state = None
    dist.barrier()  # every rank decides from the same files
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        made_with = tuple(state.get(k) for k in ("folds_sha256", "train_sha256", "config_sha256"))
        if made_with != (data.folds_sha256, data.train.sha256, training_fingerprint(config)):
            console.print(
                f"fold {fold}: {checkpoint_path} was made with other data, folds or training "
                "config; restarting"
            )
            state = None
    dist.barrier()
    if state is None and dist.main:  # a fresh start: nothing of an earlier attempt may leak in
        checkpoint_path.unlink(missing_ok=True)
        best_path.unlink(missing_ok=True)
    elif state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        step, best, history = state["step"], state["best"], state["history"]
        console.print(f"fold {fold}: resuming from step {step} ({checkpoint_path})")
        if best_path.is_file():  # it may be newer than the checkpoint: a kill fell in between
            saved = torch.load(best_path, map_location="cpu", weights_only=False, mmap=True)
            if saved["score"] > best["score"]:
                best = {"score": saved["score"], "step": saved["step"]}

    def forward(inputs: dict) -> torch.Tensor:
        with autocast(device):
            return net(**inputs).float()

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        if cfg.loss == "ce":
            return torch.nn.functional.cross_entropy(cfg.ldam_s * logits, targets)
        return recipe_loss(
            logits,
            targets,
            epoch,
            drw_start_epoch=cfg.drw_start_epoch,
            margins=margins,
            weights=weights,
            s=cfg.ldam_s,
        )

    def evaluate() -> float:
        logits = predict_logits(
            model, data.encoded_train, val_rows, cfg.eval_batch_size, pad_id, device, cfg.ldam_s
        )
        model.train()
        return macro_f1(labels[val_rows], logits.argmax(1), config.data.num_labels)

    samples = tokens = 0
    loop_time = 0.0
    model.train()
    order: list[list[int]] = []
    with _progress(console) as progress:
        task = progress.add_task(
            f"fold {fold}",
            total=cfg.steps,
            completed=step,
            loss=0.0,
            lr=scheduler.get_last_lr()[0],
            rate=0.0,
        )
        while step < cfg.steps:
            tick = time.perf_counter()
            epoch, position = divmod(step, batches_per_epoch)
            if position == 0 or not order:
                order = epoch_batches(lengths, cfg.batch_size, cfg.seed, fold, epoch)
            batch = shard(train_rows[order[position]], dist)
            batch_loss = torch.zeros((), device=device)  # the loss is read once a step
            # grad_accum micro-batches a step, the same count on every rank (equal shares); a
            # batch with fewer rows than ranks is empty everywhere and changes no weight
            micro_size = max(1, -(-len(batch) // cfg.grad_accum))
            for start in range(0, len(batch), micro_size):
                rows = batch[start : start + micro_size]
                inputs = collate(
                    data.encoded_train, rows, pad_id, device, cfg.pad_multiple, config.model.max_len
                )
                targets = torch.as_tensor(labels[rows], device=device)
                share = len(rows) / len(batch)  # micro-batch losses add up to the batch mean
                before = fgm.weight.grad.clone() if fgm and fgm.weight.grad is not None else None
                loss = share * loss_fn(forward(inputs), targets, epoch)
                loss.backward()
                batch_loss += loss.detach()
                if fgm is not None:
                    own = fgm.weight.grad if before is None else fgm.weight.grad - before
                    if fgm.attack(cfg.fgm_eps, grad=own):
                        (share * loss_fn(forward(inputs), targets, epoch)).backward()
                        fgm.restore()
                tokens += int(row_lengths[rows].sum()) * dist.world
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            batch_loss = batch_loss.item()
            step += 1
            samples += len(batch) * dist.world  # every rank trains on an equal share
            loop_time += time.perf_counter() - tick
            progress.update(
                task,
                advance=1,
                loss=batch_loss,
                lr=scheduler.get_last_lr()[0],
                rate=samples / max(loop_time, 1e-9),
            )

            if (step % cfg.eval_every == 0 or step == cfg.steps) and dist.main:
                score = evaluate()
                history.append(
                    {"step": step, "epoch": epoch, "loss": batch_loss, "val_macro_f1": score}
                )
                if score > best["score"]:
                    best = {"score": score, "step": step}
                    save_torch({**best, "model": model.state_dict()}, best_path)
            if step % cfg.checkpoint_every == 0 and step < cfg.steps and dist.main:
                save_torch(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": rng_state(),
                        "step": step,
                        "best": best,
                        "history": history,
                        "folds_sha256": data.folds_sha256,
                        "train_sha256": data.train.sha256,
                        "config_sha256": training_fingerprint(config),
                    },
                    checkpoint_path,
                )
            if step % cfg.eval_every == 0 or step % cfg.checkpoint_every == 0:
                dist.barrier()  # the other ranks wait while rank 0 evaluates and saves

    dist.barrier()
    if not dist.main:
        return None
    saved = torch.load(best_path, map_location=device, weights_only=False)
    model.load_state_dict(saved["model"])
    result = _write_fold_outputs(
        config,
        data,
        fold,
        model,
        device,
        out,
        best,
        history,
        {
            "wall_s": time.perf_counter() - started,
            "samples_per_s": samples / max(loop_time, 1e-9),
            "tokens_per_s": tokens / max(loop_time, 1e-9),
            "peak_memory_mb": peak_memory_mb(device),
            "device": str(device),
            "world_size": dist.world,  # processes (torchrun ranks) that trained this fold
            "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        },
    )
    checkpoint_path.unlink(missing_ok=True)
    return result


def _save_backbone_files(model: Classifier, tokenizer, folder: Path) -> None:
    """The backbone's config and tokenizer beside the weights: a fold reloads from its folder."""
    if not (folder / "config.json").is_file():
        model.backbone.config.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def _write_fold_outputs(config, data, fold, model, device, out, best, history, speed) -> FoldResult:
    """The best model's validation and test logits, written with the fold's metrics."""
    cfg, pad_id = config.train, data.tokenizer.pad_token_id

    def logits_of(encoded: EncodedTexts, rows: np.ndarray) -> np.ndarray:
        return predict_logits(model, encoded, rows, cfg.eval_batch_size, pad_id, device, cfg.ldam_s)

    val_logits = logits_of(data.encoded_train, np.flatnonzero(data.folds == fold))
    test_logits = [logits_of(e, np.arange(len(e))) for e in data.encoded_tests]
    metrics = write_fold_outputs(
        config,
        out,
        fold,
        data.train,
        data.tests,
        data.folds,
        data.folds_sha256,
        val_logits,
        test_logits,
        {"best_step": best["step"], "history": history, **speed},
    )
    return FoldResult(
        fold,
        metrics["val_macro_f1"],
        best["step"],
        speed["wall_s"],
        speed["samples_per_s"],
        speed["tokens_per_s"],
    )


# ---------------------------------------------------------------------------------------------
# Several folds


def parse_folds(spec: str, k: int) -> list[int]:
    """`all`, `0`, or `0,2`: the folds to train."""
    if spec == "all":
        return list(range(k))
    try:
        folds = [int(part) for part in spec.split(",")]
    except ValueError:
        raise CompError(f"--fold {spec!r}: expected 'all' or fold numbers like 0 or 0,2") from None
    bad = [f for f in folds if not 0 <= f < k]
    if bad:
        raise CompError(f"--fold {spec!r}: fold {bad[0]} is outside 0..{k - 1}")
    return folds


def _clear_fold(config: Config, fold: int, force: bool) -> None:
    """A forced or stale fold starts over; an unfinished one keeps its checkpoint to resume."""
    folder = fold_dir(config, fold)
    if force or (folder / METRICS).is_file():
        for name in (CHECKPOINT, BEST_MODEL, METRICS):
            (folder / name).unlink(missing_ok=True)


def train_folds(
    config: Config, folds: list[int], device_name: str | None, force: bool, console: Console
) -> list[FoldResult]:
    dist, device = setup(device_name or config.train.device, resolve_device)
    if not dist.main:
        console = Console(quiet=True)
    if config.train.eval_every < 1 or config.train.checkpoint_every < 1:
        raise CompError("train.eval_every and train.checkpoint_every must be at least 1")
    csv_path = folds_paths(config)[0]
    folds_sha256 = sha256_file(csv_path) if csv_path.is_file() else ""
    train_path = Path(config.data.train)
    train_sha256 = sha256_file(train_path) if train_path.is_file() else ""
    results, todo = [], []
    for fold in folds:
        saved = None if force else finished_metrics(config, fold, folds_sha256, train_sha256)
        if saved is None:
            todo.append(fold)
            continue
        console.print(
            f"fold {fold}: finished before (val macro-F1 {saved['val_macro_f1']:.4f}); "
            "skipped, --force to retrain"
        )
        if dist.main:  # checked against this config: newer than the config file, for make
            (fold_dir(config, fold) / METRICS).touch()
        results.append(
            FoldResult(
                fold,
                saved["val_macro_f1"],
                saved["best_step"],
                saved["wall_s"],
                saved["samples_per_s"],
                saved["tokens_per_s"],
                skipped=True,
            )
        )
    if todo and config.model.kind == "tfidf":
        from comp.tfidf import train_tfidf_folds

        results.extend(train_tfidf_folds(config, todo, console))
    elif todo:
        data = load_run_data(config)
        for fold in todo:
            if dist.main:
                _clear_fold(config, fold, force)
            result = train_fold(config, data, fold, device, console, dist)
            results.extend([result] if result else [])
            gc.collect()  # the fold's model and optimizer are garbage now: free their memory
            if device.type == "cuda":
                torch.cuda.empty_cache()
    teardown(dist)
    print_results(results, console)
    return sorted(results, key=lambda r: r.fold)


def train_folds_on_gpus(
    config: Config,
    folds: list[int],
    gpus: list[str],
    device_name: str | None,
    force: bool,
    console: Console,
) -> list[FoldResult]:
    """One `comp train --fold K` process per GPU, folds from a queue (see comp.distributed)."""
    from comp.distributed import train_on_gpus

    launch = experiment_dir(config) / "launch"
    config_path = launch / "config.yaml"
    write_all_atomically({config_path: lambda p: write_config(config, p)})
    codes = train_on_gpus(config_path, folds, gpus, device_name or "cuda", force, launch, console)
    failed = sorted(f for f, code in codes.items() if code != 0)
    if failed:
        raise CompError(f"folds {failed} failed; see {launch}/fold{failed[0]}.log")
    results = []
    for fold in folds:
        m = json.loads((fold_dir(config, fold) / METRICS).read_text(encoding="utf-8"))
        results.append(
            FoldResult(
                fold,
                m["val_macro_f1"],
                m["best_step"],
                m["wall_s"],
                m["samples_per_s"],
                m["tokens_per_s"],
            )
        )
    print_results(results, console)
    return results


def print_results(results: list[FoldResult], console: Console) -> None:
    table = Table(title="training results")
    for column in ("fold", "val macro-F1", "best step", "wall s", "samples/s", "tokens/s", ""):
        table.add_column(column, justify="right")
    for r in sorted(results, key=lambda r: r.fold):
        table.add_row(
            str(r.fold),
            f"{r.macro_f1:.4f}",
            str(r.best_step),
            f"{r.wall_s:.1f}",
            f"{r.samples_per_s:.1f}",
            f"{r.tokens_per_s:,.0f}",
            "skipped" if r.skipped else "",
        )
    console.print(table)
