"""The files every model kind writes for a finished fold, in one atomic step:
`oof.parquet` (validation rows, labels, logits), `test_logits.parquet` (every test set's Ids and
logits) and `metrics.json`. `comp ensemble` reads nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from comp.config import Config, training_fingerprint
from comp.data import TestData, TrainData
from comp.io import write_all_atomically
from comp.metrics import macro_f1, per_class_f1

METRICS = "metrics.json"


def logits_frame(keys: dict, logits: np.ndarray) -> pl.DataFrame:
    width = logits.shape[1]
    return pl.DataFrame(keys).with_columns(
        pl.Series("logits", np.asarray(logits, dtype=np.float32), dtype=pl.Array(pl.Float32, width))
    )


def write_fold_outputs(
    config: Config,
    out: Path,
    fold: int,
    train: TrainData,
    tests: list[TestData],
    folds: np.ndarray,
    folds_sha256: str,
    val_logits: np.ndarray,
    test_logits: list[np.ndarray],
    extra: dict,
) -> dict:
    """Write the fold's three files; returns the metrics written (validation macro-F1 etc.)."""
    num_labels = val_logits.shape[1]
    val_rows = np.flatnonzero(folds == fold)
    y = train.labels[val_rows]
    predicted = val_logits.argmax(1)
    oof = logits_frame(
        {"row": val_rows, "label": y, "fold": np.full(len(val_rows), fold)}, val_logits
    )
    frames = [
        logits_frame({"set": [t.name] * len(t), "Id": t.ids}, z)
        for t, z in zip(tests, test_logits, strict=True)
    ]
    empty = logits_frame({"set": [], "Id": []}, np.zeros((0, num_labels), dtype=np.float32))
    test_frame = pl.concat(frames) if frames else empty
    f1 = per_class_f1(y, predicted, num_labels)
    metrics = {
        "fold": fold,
        "val_macro_f1": macro_f1(y, predicted, num_labels),
        "val_rows": len(val_rows),
        "folds_sha256": folds_sha256,
        "train_sha256": train.sha256,
        "config_sha256": training_fingerprint(config),
        "per_class_f1": {train.label_names[c]: float(f1[c]) for c in range(num_labels)},
        **extra,
    }
    write_all_atomically(
        {
            out / "oof.parquet": oof.write_parquet,
            out / "test_logits.parquet": test_frame.write_parquet,
            out / METRICS: lambda p: p.write_text(json.dumps(metrics, indent=1), encoding="utf-8"),
        }
    )
    return metrics
