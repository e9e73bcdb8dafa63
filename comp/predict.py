"""Run every fold's saved best model on test sets that arrived after training.

The new logits are merged into each fold's `test_logits.parquet`, exactly as `comp train` writes
them, so `comp ensemble` and `comp submit` need no retraining.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch
from rich.console import Console
from rich.progress import Progress

from comp.backbone import load_tokenizer
from comp.config import Config, load_config
from comp.data import load_test
from comp.errors import CompError
from comp.features import encode_cached
from comp.fold_outputs import logits_frame
from comp.io import write_all_atomically
from comp.model import Classifier, build_classifier
from comp.tfidf import predict_tfidf
from comp.train import BEST_MODEL, experiment_dir, fold_dir, predict_logits, resolve_device


def load_fold_model(folder: Path, device: torch.device) -> tuple[Classifier, Config, object]:
    """The best model of a finished fold, rebuilt from its folder alone."""
    if not (folder / BEST_MODEL).is_file():
        raise CompError(f"{folder}: no {BEST_MODEL}; train this fold first (`comp train`)")
    fold_config = load_config([folder / "config.yaml"])
    model = build_classifier(fold_config, pretrained=False, backbone_dir=str(folder / "backbone"))
    saved = torch.load(folder / BEST_MODEL, map_location=device, weights_only=False)
    model.load_state_dict(saved["model"])
    return model.to(device), fold_config, load_tokenizer(str(folder / "backbone"))


def predict_folds(
    config: Config,
    set_names: list[str],
    device_name: str | None,
    force: bool,
    console: Console,
) -> dict[int, list[str]]:
    """Add the named test sets (default: every configured set a fold lacks) to each fold's
    test_logits.parquet; returns the sets predicted per fold."""
    device = resolve_device(device_name or config.train.device)
    known = {t.name: t for t in config.data.test_sets}
    unknown = [name for name in set_names if name not in known]
    if unknown:
        raise CompError(
            f"--test-set {unknown[0]!r}: not in data.test_sets "
            f"({', '.join(known) or 'none configured'})"
        )
    tests = {name: load_test(config.data, known[name]) for name in (set_names or known)}
    done: dict[int, list[str]] = {}
    with Progress(console=console) as progress:
        task = progress.add_task("predict", total=config.folds.k)
        for k in range(config.folds.k):
            folder = fold_dir(config, k)
            path = folder / "test_logits.parquet"
            if not path.is_file():
                raise CompError(
                    f"{folder}: fold {k} has not finished training; run "
                    f"`comp train --fold {k}` first"
                )
            existing = pl.read_parquet(path)
            have = set(existing["set"].unique().to_list())
            todo = [n for n in tests if force or set_names or n not in have]
            if todo:
                if load_config([folder / "config.yaml"]).model.kind == "tfidf":
                    frames = {n: _predict_tfidf_set(folder, tests[n]) for n in todo}
                else:
                    model, fold_config, tokenizer = load_fold_model(folder, device)
                    frames = {
                        n: _predict_set(model, fold_config, tokenizer, tests[n], config, device)
                        for n in todo
                    }
                kept = existing.filter(~pl.col("set").is_in(todo))
                merged = pl.concat([kept, *frames.values()])
                order = {t.name: i for i, t in enumerate(config.data.test_sets)}
                merged = (
                    merged.with_columns(
                        pl.col("set").replace_strict(order, default=len(order)).alias("_order"),
                        pl.int_range(pl.len()).alias("_row"),
                    )
                    .sort("_order", "_row")
                    .drop("_order", "_row")
                )
                write_all_atomically({path: merged.write_parquet})
            done[k] = todo
            progress.advance(task)
    for k, names in done.items():
        console.print(
            f"fold {k}: " + (f"predicted {', '.join(names)}" if names else "nothing to predict")
        )
    return done


def _predict_set(model, fold_config: Config, tokenizer, test, config: Config, device):
    m, t = fold_config.model, fold_config.train
    encoded = encode_cached(
        tokenizer,
        test.questions,
        test.answers,
        m.max_len,
        m.answer_min_tokens,
        experiment_dir(config) / "cache",
    )
    logits = predict_logits(
        model,
        encoded,
        np.arange(len(test)),
        t.eval_batch_size,
        tokenizer.pad_token_id,
        device,
        t.ldam_s,
    )
    return logits_frame({"set": [test.name] * len(test), "Id": test.ids}, logits)


def _predict_tfidf_set(folder: Path, test) -> pl.DataFrame:
    logits = predict_tfidf(folder, test.questions, test.answers)
    return logits_frame({"set": [test.name] * len(test), "Id": test.ids}, logits)
