"""The files every model kind's finished fold holds, written in one atomic step: `oof.parquet`
(validation rows, labels, logits), `test_logits.parquet` (every test set's Ids and logits) and
`metrics.json`, written by the fold frame from a kind's `FoldFit`; and their readers.
Everything after training (`comp ensemble`, `comp predict`) reads nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from comp.config import write_config
from comp.errors import CompError
from comp.io import read_parquet, write_all_atomically
from comp.kinds import FoldFit, RunInputs
from comp.layout import CONFIG, METRICS, OOF, TEST_LOGITS
from comp.metrics import macro_f1, per_class_f1


def logits_frame(keys: dict, logits: np.ndarray) -> pl.DataFrame:
    width = logits.shape[1]
    return pl.DataFrame(keys).with_columns(
        pl.Series("logits", np.asarray(logits, dtype=np.float32), dtype=pl.Array(pl.Float32, width))
    )


def tests_logits_frame(tests, logits: list[np.ndarray], num_labels: int) -> pl.DataFrame:
    """`set`, `Id`, `logits` of every test set, in the order given."""
    frames = [
        logits_frame({"set": [t.name] * len(t), "Id": t.ids}, z)
        for t, z in zip(tests, logits, strict=True)
    ]
    empty = logits_frame({"set": [], "Id": []}, np.zeros((0, num_labels), dtype=np.float32))
    return pl.concat(frames) if frames else empty


def write_config_file(config, folder: Path) -> None:
    """The resolved config beside a fold's (or an ensemble's) artifacts."""
    write_all_atomically({folder / CONFIG: lambda p: write_config(config, p)})


class NonFiniteLogitsError(CompError):
    pass


def _check_finite(fit: FoldFit, fold: int, inputs: RunInputs) -> None:
    config = inputs.config
    named = [("validation", fit.val_logits)]
    named += [
        (f"test set '{t.name}'", z) for t, z in zip(inputs.tests, fit.test_logits, strict=True)
    ]
    for name, logits in named:
        bad = int(np.size(logits) - np.isfinite(logits).sum())
        if bad:
            raise NonFiniteLogitsError(
                f"fold {fold} of {config.train.experiment} ({config.model.kind}): {name} logits "
                f"hold {bad:,} non-finite values; nothing written. The model diverged: try a "
                "lower learning rate"
            )


def write_fold_outputs(out: Path, fold: int, inputs: RunInputs, fit: FoldFit, extra: dict) -> dict:
    """Write the fold's three files from a kind's FoldFit; returns the metrics written. Logits
    that are not all finite are refused, whatever the kind: nothing is written."""
    num_labels = inputs.config.data.num_labels
    _check_finite(fit, fold, inputs)
    val_rows = inputs.val_rows(fold)
    y = inputs.train.labels[val_rows]
    predicted = fit.val_logits.argmax(1)
    oof = logits_frame(
        {"row": val_rows, "label": y, "fold": np.full(len(val_rows), fold)}, fit.val_logits
    )
    tests = tests_logits_frame(inputs.tests, fit.test_logits, num_labels)
    f1 = per_class_f1(y, predicted, num_labels)
    metrics = {
        "fold": fold,
        "val_macro_f1": macro_f1(y, predicted, num_labels),
        "val_rows": len(val_rows),
        **inputs.made_with.record(),
        "per_class_f1": {inputs.train.label_names[c]: float(f1[c]) for c in range(num_labels)},
        "best_step": fit.best_step,
        "history": fit.history,
        "samples_per_s": fit.samples_per_s,
        "tokens_per_s": fit.tokens_per_s,
        **fit.extra,
        **extra,
    }
    write_all_atomically(
        {
            out / OOF: oof.write_parquet,
            out / TEST_LOGITS: tests.write_parquet,
            out / METRICS: lambda p: p.write_text(json.dumps(metrics, indent=1), encoding="utf-8"),
        }
    )
    return metrics


def read_logits_parquet(
    path: Path, rebuild: str, keys: list[str], num_labels: int, column: str = "logits"
) -> pl.DataFrame:
    """`keys` and a logits column (Array(Float32, num_labels)) of a parquet file written by comp;
    a missing, truncated or foreign file is a CompError naming it and the command that rebuilds
    it."""
    frame = read_parquet(path, rebuild, [*keys, column])
    width = getattr(frame.schema[column], "size", None)
    if width != num_labels:
        raise CompError(
            f"{path}: column '{column}' is {frame.schema[column]}, expected "
            f"Array(Float32, {num_labels}) (data.num_labels); run `{rebuild}`"
        )
    return frame
