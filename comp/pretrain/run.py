"""`comp pretrain`: continued masked-LM pretraining of a backbone on the competition's own text,
written as a local backbone folder that `model.backbone` can point at.

The text is every train row, plus every configured test set unless `pretrain.include_test` is
false (no label is read); each row is `[CLS] question [SEP] answer [SEP]`, truncated and padded
exactly as training builds it (the token cache's `pair_input_ids`, `model.max_len`,
`model.answer_min_tokens`, `train.pad_multiple`). While it runs, `<out_dir>.work/` holds the
lock, the checkpoints and the token cache; the folder itself appears only when it is complete
(weights with the masked-LM head, tokenizer, the resolved config and `pretrain_metrics.json`).
A folder made with the same settings is not made again (`--force` does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from comp.config import Config, write_config
from comp.data import load_tests, load_train
from comp.errors import CompError
from comp.events import Events
from comp.io import UnreadableFile, read_json, remove_stale_temp_files, sha256_file
from comp.kinds import get_kind
from comp.locks import folder_lock
from comp.neural.backbone import (
    check_tokenizer_round_trip,
    load_pretrained_backbone,
    load_tokenizer,
    tokenizer_options,
    write_backbone_folder,
)
from comp.neural.distributed import peak_memory_mb, resolve_device
from comp.neural.files import (
    PRETRAIN_CONFIG,
    PRETRAIN_METRICS,
    TENSORBOARD,
    WORK_SUFFIX,
    backbone_sha256,
)
from comp.neural.token_cache import EncodedTexts, encode_cached
from comp.pretrain.mlm import Pretrainer
from comp.tensorboard import TensorBoard

CACHE = "cache"
ROUND_TRIP_ROWS = 200  # texts checked to tokenize the same after the tokenizer is saved
SHAPING_KEYS = ("max_len", "answer_min_tokens", "lowercase", "strip_accents")
INPUT_KEYS = ("text_column", "question_marker", "answer_marker")


@dataclass(frozen=True)
class PretrainPlan:
    config: Config
    source: str  # the backbone pretraining starts from
    out: Path  # pretrain.out_dir
    work: Path  # <out>.work/: lock, checkpoints, token cache
    fingerprint: str  # of everything that shapes the weights


def _sha256_or_path(path: str) -> str:
    return sha256_file(path) if Path(path).is_file() else path  # a missing file fails later


def pretrain_fingerprint(config: Config, source: str) -> str:
    """sha256 of what shapes the pretrained weights: the pretrain keys (not where or how often
    it saves), the backbone it starts from (its files' hash when it is a folder), the input
    keys, the text files' contents and the precision."""
    settings = dataclasses.asdict(config.pretrain)
    for key in ("out_dir", "backbone", "checkpoint_every"):
        settings.pop(key)
    files = [config.data.train]
    if config.pretrain.include_test:
        files += [t.path for t in config.data.test_sets]
    shaping = {
        "pretrain": settings,
        "source": source,
        "source_sha256": backbone_sha256(source),
        "model": {key: getattr(config.model, key) for key in SHAPING_KEYS},
        "inputs": {key: getattr(config.data, key) for key in INPUT_KEYS},
        "files": [_sha256_or_path(path) for path in files],
        "precision": config.train.precision,
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()


def plan_pretraining(config: Config) -> PretrainPlan:
    if not get_kind(config.model.kind).USES_BACKBONE:
        raise CompError(
            f"comp pretrain pretrains model.backbone, which model.kind {config.model.kind} does "
            "not read"
        )
    if not config.pretrain.out_dir:
        raise CompError(
            "pretrain.out_dir is empty: set it to the folder to write the pretrained backbone "
            "to, then point model.backbone at it"
        )
    source = config.pretrain.backbone or config.model.backbone
    out = Path(config.pretrain.out_dir)
    work = out.with_name(out.name + WORK_SUFFIX)
    return PretrainPlan(config, source, out, work, pretrain_fingerprint(config, source))


def finished_pretraining(plan: PretrainPlan) -> dict | None:
    """The output's metrics if it was made with this plan's fingerprint; None otherwise."""
    path = plan.out / PRETRAIN_METRICS
    if not (plan.out / "config.json").is_file() or not path.is_file():
        return None
    try:
        metrics = read_json(path, "comp pretrain --force")
    except UnreadableFile:
        return None
    return metrics if metrics.get("fingerprint") == plan.fingerprint else None


def pretraining_texts(config: Config) -> tuple[list[str], list[str], dict]:
    """Questions and answers of every train row and, unless pretrain.include_test is false,
    of every test row; and how many rows came from each."""
    train = load_train(config.data)
    tests = load_tests(config) if config.pretrain.include_test else []
    questions = list(train.questions) + [q for t in tests for q in t.questions]
    answers = list(train.answers) + [a for t in tests for a in t.answers]
    rows = {"train": len(train), **{f"test {t.name}": len(t) for t in tests}}
    return questions, answers, rows


def unknown_share(encoded: EncodedTexts, tokenizer) -> float:
    """The share of [UNK] among the tokens that are not [CLS] or [SEP]: high when the
    tokenizer's flags (model.lowercase, model.strip_accents) do not match its vocabulary."""
    content = ~np.isin(encoded.ids, [tokenizer.cls_token_id, tokenizer.sep_token_id])
    unknown = encoded.ids == tokenizer.unk_token_id
    return float(unknown[content].sum() / max(content.sum(), 1))


def write_pretrained(plan: PretrainPlan, model, tokenizer, metrics: dict, sample: list[str]):
    """The backbone folder: weights (with the masked-LM head), tokenizer, the resolved config
    and the metrics; checked to load as training loads it, renamed into place when complete."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        load_pretrained_backbone(str(tmp))  # the encoder alone, as model.backbone loads it
        check_tokenizer_round_trip(tokenizer, load_tokenizer(str(tmp)), sample)
        write_config(plan.config, tmp / PRETRAIN_CONFIG)
        if (plan.work / TENSORBOARD).is_dir():  # the training events, beside the weights
            shutil.copytree(plan.work / TENSORBOARD, tmp / TENSORBOARD)
        text = json.dumps(metrics, indent=1)
        (tmp / PRETRAIN_METRICS).write_text(text, encoding="utf-8")

    return write_backbone_folder(plan.out, write)


def pretrain(config: Config, device_name: str | None, force: bool, console: Console) -> Path:
    """Pretrain `pretrain.backbone` (default `model.backbone`) into `pretrain.out_dir`, or skip
    it when that folder was made with the same settings (unless `force`). Resumes from the
    work folder's last checkpoint; a second process on the same folder stops at once."""
    plan = plan_pretraining(config)
    with folder_lock(plan.work, f"the pretrained backbone {plan.out}"):
        done = None if force else finished_pretraining(plan)
        if done is not None:
            console.print(
                f"{plan.out}: pretrained before with these settings ({done['steps']} steps, "
                f"final loss {done['final_loss']:.4f}); skipped, --force to pretrain again"
            )
            (plan.out / "config.json").touch()  # newer than the config file, for make
            shutil.rmtree(plan.work, ignore_errors=True)
            return plan.out
        remove_stale_temp_files(plan.work)  # killed writers' files: this process holds the lock
        for stale in plan.out.parent.glob(f".{plan.out.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        metrics = _pretrain_into(plan, device_name, console)
        shutil.rmtree(plan.work, ignore_errors=True)
    history = metrics["history"]
    console.print(
        f"wrote pretrained backbone to {plan.out} ({metrics['steps']} steps, loss "
        f"{history[0]['loss']:.4f} -> {metrics['final_loss']:.4f}, {metrics['train_s']:.1f} s, "
        f"{metrics['samples_per_s']:.1f} samples/s)"
    )
    return plan.out


def _pretrain_into(plan: PretrainPlan, device_name: str | None, console: Console) -> dict:
    config = plan.config
    model_cfg = config.model
    questions, answers, rows = pretraining_texts(config)
    tokenizer = load_tokenizer(plan.source, tokenizer_options(model_cfg))
    encoded = encode_cached(
        tokenizer,
        questions,
        answers,
        model_cfg.max_len,
        model_cfg.answer_min_tokens,
        plan.work / CACHE,
    )
    unknown = unknown_share(encoded, tokenizer)
    console.print(
        f"pretrain: {len(encoded):,} rows ({', '.join(f'{n:,} {k}' for k, n in rows.items())}), "
        f"{int(encoded.lengths.sum()):,} tokens, [UNK] {unknown:.2%} of the text's tokens"
    )
    device = resolve_device(device_name or config.train.device)
    events = Events([TensorBoard(plan.work / TENSORBOARD)] if config.train.tensorboard else [])
    trainer = Pretrainer(
        config, plan.source, tokenizer, encoded, plan.work, plan.fingerprint, device, console,
        events,
    )  # fmt: skip
    try:
        record = trainer.run()
    finally:
        events.close()
    losses = [point["loss"] for point in record["history"] if point["loss"] is not None]
    metrics = {
        "fingerprint": plan.fingerprint,
        "source": plan.source,
        "rows": rows,
        "tokens": int(encoded.lengths.sum()),
        "unknown_share": unknown,
        "final_loss": losses[-1] if losses else float("nan"),
        "peak_memory_mb": peak_memory_mb(device),
        "precision": config.train.precision if device.type == "cuda" else "fp32",
        **record,
    }
    sample = [f"{q}\n{a}" for q, a in zip(questions, answers, strict=True)][:ROUND_TRIP_ROWS]
    write_pretrained(plan, trainer.model, tokenizer, metrics, sample)
    return metrics
