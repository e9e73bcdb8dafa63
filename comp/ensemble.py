"""Assemble fold outputs into one out-of-fold (OOF) matrix and averaged test logits, score them
honestly, and apply post-hoc logit adjustment only when cross-fitting says it helps.

Every training row is scored exactly once by the fold model that did not see it (train-only
rows, which no fold validates, are listed and left out). The logit-adjustment strength τ is
chosen by cross-fitting: the rows of fold f are scored with the τ chosen on the other folds, so
the reported gain is never measured on the rows it was tuned on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from comp.calibration import fit_temperature
from comp.config import Config, EnsembleConfig, write_config
from comp.errors import CompError
from comp.folds import TRAIN_ONLY, FoldAssignment, folds_paths, load_fold_assignment
from comp.io import read_json, write_all_atomically
from comp.layout import (
    CONFIG,
    METRICS,
    OOF,
    PER_CLASS,
    STOPPED,
    TEST_LOGITS,
    ensemble_dir,
    fold_dir,
    retrain_command,
)
from comp.metrics import class_counts, macro_f1_from_counts
from comp.runs.outputs import read_logits_parquet


class EnsembleError(CompError):
    pass


@dataclass
class Predictions:
    """OOF logits of the validated rows (sorted by row) and test logits, for one model or many."""

    rows: np.ndarray
    oof: np.ndarray  # [rows, C]
    test_keys: pl.DataFrame  # set, Id: the order of the test logits
    test: np.ndarray  # [test rows, C]
    temperature: float = 1.0  # both logits above are already divided by it


def logits_array(frame: pl.DataFrame, column: str = "logits") -> np.ndarray:
    """A frame's fixed-width logits column as a float32 [rows, classes] array."""
    return frame[column].to_numpy().astype(np.float32, copy=False)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def average(logits: list[np.ndarray], weights: np.ndarray, how: str) -> np.ndarray:
    """Weighted mean of logits, or (how="probs") the log of the weighted mean probability."""
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    if how == "probs":
        probs = sum(w * np.exp(log_softmax(z)) for w, z in zip(weights, logits, strict=True))
        return np.log(np.maximum(probs, 1e-30)).astype(np.float32)
    return sum(w * z for w, z in zip(weights, logits, strict=True)).astype(np.float32)


def _read_fold(
    config: Config, experiment: str, k: int, folds: FoldAssignment
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One finished fold's OOF rows (checked against the fold file) and test logits."""
    out = fold_dir(config, k, experiment)
    # the fold's own resolved config retrains it as it was (a kNN experiment as kNN); --force,
    # since a fold whose metrics.json reads back counts as finished
    rebuild = retrain_command(out)
    if not (out / METRICS).is_file() and (out / STOPPED).is_file():
        stopped = read_json(out / STOPPED, rebuild)
        raise EnsembleError(
            f"{out}: fold {k} of experiment '{experiment}' was stopped early at step "
            f"{stopped.get('step')} ({stopped.get('reason')}); it has no outputs. Train it to the "
            f"end with `comp train --fold {k} --config {out / CONFIG}`"
        )
    if not (out / METRICS).is_file():
        raise EnsembleError(
            f"{out}: fold {k} of experiment '{experiment}' is missing or unfinished; "
            f"run `comp train --fold {k}` (with train.experiment={experiment})"
        )
    metrics = read_json(out / METRICS, rebuild)
    if metrics.get("folds_sha256") != folds.sha256:
        raise EnsembleError(
            f"{out}: trained on other folds than {folds_paths(config)[0]} "
            f"(sha256 {str(metrics.get('folds_sha256'))[:12]} vs {folds.sha256[:12]}); "
            "every model of an ensemble must use the same folds"
        )
    oof = read_logits_parquet(out / OOF, rebuild, ["row"], config.data.num_labels)
    expected = np.flatnonzero(folds.fold == k)
    rows = oof["row"].to_numpy()
    if rows.size != np.unique(rows).size:
        dup = rows[np.flatnonzero(np.diff(np.sort(rows)) == 0)[:5]]
        raise EnsembleError(f"{out / OOF}: duplicated rows {dup.tolist()}")
    if not np.array_equal(np.sort(rows), expected):
        missing = np.setdiff1d(expected, rows)[:5].tolist()
        extra = np.setdiff1d(rows, expected)[:5].tolist()
        raise EnsembleError(
            f"{out / OOF}: rows do not match fold {k} of the fold file "
            f"(missing {missing}, not in this fold {extra})"
        )
    tests = read_logits_parquet(out / TEST_LOGITS, rebuild, ["set", "Id"], config.data.num_labels)
    return oof, tests


def load_experiment(config: Config, experiment: str, folds: FoldAssignment) -> Predictions:
    """One experiment's K folds: OOF rows checked against the fold file, test logits averaged."""
    oof_parts, test_parts, keys = [], [], None
    for k in range(config.folds.k):
        oof, tests = _read_fold(config, experiment, k, folds)
        oof_parts.append(oof)
        these = tests.select("set", "Id")
        if keys is None:
            keys = these
        elif not these.equals(keys):
            raise EnsembleError(
                f"{fold_dir(config, k, experiment) / TEST_LOGITS}: test sets or Ids differ from "
                "fold 0's; run `comp predict` so every fold has the same test sets"
            )
        test_parts.append(logits_array(tests))
    oof = pl.concat(oof_parts).sort("row")
    rows = oof["row"].to_numpy()
    if rows.size != np.unique(rows).size:
        raise EnsembleError(f"experiment '{experiment}': a row is in two folds' OOF files")
    oof_logits, temperature = logits_array(oof), 1.0
    if config.ensemble.calibrate:
        try:
            temperature = fit_temperature(oof_logits, folds.labels[rows])
        except ValueError as error:
            raise EnsembleError(f"experiment '{experiment}': {error}") from None
    # each fold's test logits are scaled before the folds are averaged: with average=probs the
    # test side then matches the OOF side, softmax(z / T)
    folds_test = [z / temperature for z in test_parts]
    test = average(folds_test, np.ones(len(folds_test)), config.ensemble.average)
    return Predictions(rows, oof_logits / temperature, keys, test, temperature)


# ---------------------------------------------------------------------------------------------
# Scores from confusion counts, vectorised over many candidate predictions


def class_counts_by_fold(y: np.ndarray, pred: np.ndarray, fold_ids: np.ndarray, k: int, c: int):
    """tp, predicted and true counts per (fold, class): arrays [k, c]."""
    tp = np.bincount(fold_ids[y == pred] * c + y[y == pred], minlength=k * c).reshape(k, c)
    predicted = np.bincount(fold_ids * c + pred, minlength=k * c).reshape(k, c)
    true = np.bincount(fold_ids * c + y, minlength=k * c).reshape(k, c)
    return tp, predicted, true


def class_log_prior(labels: np.ndarray, c: int) -> np.ndarray:
    """log of each class's share of the training rows (counts clamped at 1)."""
    counts = np.bincount(labels, minlength=c)
    return np.log(np.maximum(counts, 1) / counts.sum()).astype(np.float32)


def tau_grid(cfg: EnsembleConfig) -> np.ndarray:
    """The τ values cross-fitting chooses from: 0..ensemble.tau_max by ensemble.tau_step."""
    return np.arange(0, cfg.tau_max + cfg.tau_step / 2, cfg.tau_step)


def cross_fit_tau(
    logits: np.ndarray,
    y: np.ndarray,
    fold_ids: np.ndarray,
    log_prior: np.ndarray,
    grid: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray, float]:
    """For each fold, the τ that maximises macro-F1 on the other folds' rows.

    Returns (tau per fold, cross-fitted adjusted logits, τ chosen on all rows for the test set).
    """
    c = logits.shape[1]
    counts = [
        class_counts_by_fold(y, (logits - t * log_prior).argmax(1), fold_ids, k, c) for t in grid
    ]
    tau = np.zeros(k)
    for f in range(k):
        others = [macro_f1_from_counts(*(x.sum(0) - x[f] for x in count)) for count in counts]
        tau[f] = grid[int(np.argmax(others))]
    overall = [macro_f1_from_counts(*(x.sum(0) for x in count)) for count in counts]
    adjusted = logits - tau[fold_ids][:, None] * log_prior[None, :]
    return tau, adjusted.astype(np.float32), float(grid[int(np.argmax(overall))])


def fit_class_bias(
    logits: np.ndarray, y: np.ndarray, grid: np.ndarray, passes: int = 2
) -> np.ndarray:
    """Greedy per-class biases maximising macro-F1 on (logits, y): one class at a time, every
    candidate scored from the rows' best other class, so each try costs O(rows)."""
    n, c = logits.shape
    bias = np.zeros(c, dtype=np.float32)
    for _ in range(passes):
        for cls in range(c):
            scores = logits + bias
            scores[:, cls] = -np.inf
            other_idx = scores.argmax(1)
            other_val = scores[np.arange(n), other_idx]
            best_score, best_b = -1.0, bias[cls]
            for b in grid:
                pred = np.where(logits[:, cls] + b > other_val, cls, other_idx)
                tp, predicted, true = (
                    x[0] for x in class_counts_by_fold(y, pred, np.zeros(n, dtype=np.int64), 1, c)
                )
                score = macro_f1_from_counts(tp, predicted, true)
                if score > best_score + 1e-12:
                    best_score, best_b = score, b
            bias[cls] = best_b
    return bias


def cross_fit_bias(logits, y, fold_ids, k, grid, shrinkage, tau, log_prior) -> np.ndarray:
    """OOF logits adjusted, for each fold f, by tau[f] (chosen without fold f) and per-class
    biases fitted on the other folds' rows under that same tau, then shrunk: fold f's labels
    reach neither."""
    adjusted = np.empty_like(logits)
    for f in range(k):
        base = logits - tau[f] * log_prior
        train, held = fold_ids != f, fold_ids == f
        adjusted[held] = base[held] + shrinkage * fit_class_bias(base[train], y[train], grid)
    return adjusted


def optimize_weights(parts: list[np.ndarray], y: np.ndarray, how: str, c: int) -> np.ndarray:
    """Non-negative experiment weights by coordinate search on the macro-F1 of these rows."""
    weights = np.ones(len(parts))
    zeros = np.zeros(len(y), dtype=np.int64)

    def score(w):
        pred = average(parts, w, how).argmax(1)
        return macro_f1_from_counts(*(x[0] for x in class_counts_by_fold(y, pred, zeros, 1, c)))

    best = score(weights)
    for _ in range(3):
        for e in range(len(parts)):
            for value in np.linspace(0, 2, 9):
                trial = weights.copy()
                trial[e] = value
                if trial.sum() > 0 and (s := score(trial)) > best + 1e-12:
                    best, weights = s, trial
    return weights / weights.sum()


def cross_fit_weights(
    parts: list[np.ndarray], y: np.ndarray, fold_ids: np.ndarray, k: int, how: str, c: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(OOF average, weights per fold [k, experiments], weights on all rows): the rows of fold f
    are averaged with the weights fitted on the other folds, so the OOF score is not tuned on
    the rows it is measured on; the test weights are fitted on every row."""
    oof = np.empty(parts[0].shape, dtype=np.float32)  # as `average` returns it
    per_fold = np.zeros((k, len(parts)))
    for f in range(k):
        held, rest = fold_ids == f, fold_ids != f
        per_fold[f] = optimize_weights([p[rest] for p in parts], y[rest], how, c)
        oof[held] = average([p[held] for p in parts], per_fold[f], how)
    return oof, per_fold, optimize_weights(parts, y, how, c)


# ---------------------------------------------------------------------------------------------
# The command


@dataclass
class EnsembleResult:
    out_dir: Path
    metrics: dict
    per_class: pl.DataFrame
    confused: list[tuple[str, str, int, float]]


def read_chosen_logits(
    out: Path, file: str, keys: list[str], num_labels: int
) -> tuple[Path, pl.DataFrame, str]:
    """(parquet path, frame of `keys` + the chosen logits column, its name) from an ensemble
    folder: `logits_adjusted` when the ensemble applies the adjustment, else `logits`."""
    parquet, metrics_path = out / file, out / METRICS
    for path in (parquet, metrics_path):
        if not path.is_file():
            raise EnsembleError(f"{path}: not found; run `comp ensemble` first")
    metrics = read_json(metrics_path, "comp ensemble")
    apply = metrics.get("apply_adjustment")
    if not isinstance(apply, bool):
        raise EnsembleError(
            f"{metrics_path}: no boolean 'apply_adjustment'; re-run `comp ensemble`"
        )
    column = "logits_adjusted" if apply else "logits"
    frame = read_logits_parquet(parquet, "comp ensemble", keys, num_labels, column)
    return parquet, frame, column


def aligned_predictions(
    config: Config, experiments: list[str], folds: FoldAssignment
) -> list[Predictions]:
    """Each experiment's predictions; all must cover the same OOF rows and test Ids."""
    preds = [load_experiment(config, name, folds) for name in experiments]
    for name, p in zip(experiments[1:], preds[1:], strict=True):
        if not np.array_equal(p.rows, preds[0].rows) or not p.test_keys.equals(preds[0].test_keys):
            raise EnsembleError(
                f"experiment '{name}' covers other rows or test Ids than '{experiments[0]}'"
            )
    return preds


@dataclass
class Weighted:
    """The experiments' logits averaged with their weights (cross-fitted when fitted)."""

    oof: np.ndarray
    test: np.ndarray
    weights: np.ndarray  # used for the test logits
    weights_per_fold: np.ndarray  # [k, experiments]: fold f's OOF rows used row f


def weigh(
    config: Config, preds: list[Predictions], y: np.ndarray, fold_ids: np.ndarray, optimize: bool
) -> Weighted:
    cfg, k, c = config.ensemble, config.folds.k, config.data.num_labels
    if cfg.weights and len(cfg.weights) != len(preds):
        raise EnsembleError(
            f"ensemble.weights has {len(cfg.weights)} values for {len(preds)} experiments"
        )
    parts = [p.oof for p in preds]
    if optimize:
        oof, weights_per_fold, weights = cross_fit_weights(parts, y, fold_ids, k, cfg.average, c)
    else:
        weights = np.asarray(cfg.weights or np.ones(len(preds)), dtype=np.float64)
        weights = weights / weights.sum()
        weights_per_fold = np.tile(weights, (k, 1))
        oof = average(parts, weights, cfg.average)
    test = average([p.test for p in preds], weights, cfg.average)
    return Weighted(oof, test, weights, weights_per_fold)


@dataclass
class Adjusted:
    """Logits minus tau * log(prior) (tau cross-fitted), with class biases when configured."""

    oof: np.ndarray
    test: np.ndarray
    tau_per_fold: np.ndarray
    tau_test: float


def adjust(
    cfg: EnsembleConfig, w: Weighted, y: np.ndarray, fold_ids: np.ndarray, log_prior, k: int
) -> Adjusted:
    tau, oof_adjusted, test_tau = cross_fit_tau(w.oof, y, fold_ids, log_prior, tau_grid(cfg), k)
    test_adjusted = w.test - test_tau * log_prior
    if cfg.class_bias:
        bias_grid = np.linspace(-1, 1, 9)
        oof_adjusted = cross_fit_bias(
            w.oof, y, fold_ids, k, bias_grid, cfg.bias_shrinkage, tau, log_prior
        )
        bias = fit_class_bias(w.oof - test_tau * log_prior, y, bias_grid)
        test_adjusted = test_adjusted + cfg.bias_shrinkage * bias
    return Adjusted(oof_adjusted, test_adjusted.astype(np.float32), tau, test_tau)


def scores_by_fold(
    y: np.ndarray, pred: np.ndarray, fold_ids: np.ndarray, k: int, c: int
) -> tuple[float, list[float]]:
    """Macro-F1 over all rows and over each fold's rows."""
    tp, predicted, true = class_counts_by_fold(y, pred, fold_ids, k, c)
    overall = macro_f1_from_counts(tp.sum(0), predicted.sum(0), true.sum(0))
    return overall, [macro_f1_from_counts(tp[f], predicted[f], true[f]) for f in range(k)]


def _write_ensemble(out: Path, config: Config, oof_frame, test_frame, per_class, metrics) -> None:
    write_all_atomically(
        {
            out / CONFIG: lambda p: write_config(config, p),
            out / OOF: oof_frame.write_parquet,
            out / TEST_LOGITS: test_frame.write_parquet,
            out / PER_CLASS: per_class.write_csv,
            out / METRICS: lambda p: p.write_text(json.dumps(metrics, indent=1), encoding="utf-8"),
        }
    )


def _frames(rows, y, fold_ids, test_keys, w: Weighted, a: Adjusted, c: int):
    """The ensemble's oof.parquet and test_logits.parquet, raw and adjusted logits."""
    array = pl.Array(pl.Float32, c)
    oof = pl.DataFrame({"row": rows, "label": y, "fold": fold_ids}).with_columns(
        pl.Series("logits", w.oof, dtype=array),
        pl.Series("logits_adjusted", a.oof, dtype=array),
    )
    test = test_keys.with_columns(
        pl.Series("logits", w.test, dtype=array),
        pl.Series("logits_adjusted", a.test, dtype=array),
    )
    return oof, test


def run_ensemble(config: Config, experiments: list[str], optimize: bool | None = None):
    """Align the experiments' folds, weigh, adjust, score and write runs/ensembles/<name>/."""
    cfg, c, k = config.ensemble, config.data.num_labels, config.folds.k
    experiments = experiments or cfg.experiments or [config.train.experiment]
    folds = load_fold_assignment(config)
    preds = aligned_predictions(config, experiments, folds)
    rows = preds[0].rows
    y, fold_ids = folds.labels[rows], folds.fold[rows]
    optimize = cfg.optimize_weights if optimize is None else optimize
    weighted = weigh(config, preds, y, fold_ids, optimize)
    log_prior = class_log_prior(folds.labels, c)
    adjusted = adjust(cfg, weighted, y, fold_ids, log_prior, k)
    raw_pred, adjusted_pred = weighted.oof.argmax(1), adjusted.oof.argmax(1)
    raw_score, raw_per_fold = scores_by_fold(y, raw_pred, fold_ids, k, c)
    adjusted_score, adjusted_per_fold = scores_by_fold(y, adjusted_pred, fold_ids, k, c)
    apply = bool(cfg.logit_adjustment and adjusted_score > raw_score)
    final_pred = adjusted_pred if apply else raw_pred
    metrics = {
        "experiments": experiments,
        "weights": weighted.weights.tolist(),
        "weights_optimized": optimize,  # cross-fitted: fold f's rows use weights_per_fold[f]
        "weights_per_fold": weighted.weights_per_fold.tolist(),
        # one scalar per model, fitted by log-loss on all its OOF rows (not by the score, so the
        # OOF macro-F1 stays honest up to one parameter per model)
        "temperatures": [p.temperature for p in preds],
        "average": cfg.average,
        "oof_rows": int(len(rows)),
        "train_only_rows": np.flatnonzero(folds.fold == TRAIN_ONLY).tolist(),
        "oof_macro_f1": raw_score,
        "oof_macro_f1_adjusted_crossfit": adjusted_score,
        "oof_macro_f1_per_fold": raw_per_fold,
        "oof_macro_f1_adjusted_per_fold": adjusted_per_fold,
        "tau_per_fold": adjusted.tau_per_fold.tolist(),
        "tau_test": adjusted.tau_test,
        "class_bias": cfg.class_bias,
        "apply_adjustment": apply,
        "folds_sha256": folds.sha256,
    }
    counts = np.bincount(folds.labels, minlength=c)
    per_class = _per_class_table(y, final_pred, counts, folds.label_names)
    confused = _most_confused(y, final_pred, folds.label_names)
    metrics["most_confused"] = [list(x) for x in confused]
    out = ensemble_dir(config)
    oof_frame, test_frame = _frames(rows, y, fold_ids, preds[0].test_keys, weighted, adjusted, c)
    _write_ensemble(out, config, oof_frame, test_frame, per_class, metrics)
    return EnsembleResult(out, metrics, per_class, confused)


def _per_class_table(y, pred, train_counts, names) -> pl.DataFrame:
    c = len(train_counts)
    tp, predicted, true = class_counts(y, pred, c)
    precision = np.divide(tp, predicted, out=np.zeros(c), where=predicted > 0)
    recall = np.divide(tp, true, out=np.zeros(c), where=true > 0)
    f1 = np.divide(2 * tp, predicted + true, out=np.zeros(c), where=(predicted + true) > 0)
    return pl.DataFrame(
        {
            "label": np.arange(c),
            "category": names,
            "train_rows": train_counts,
            "oof_rows": true,
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    ).sort(["f1", "train_rows"])


def _most_confused(y, pred, names, top: int = 10) -> list[tuple[str, str, int, float]]:
    c = len(names)
    wrong = y != pred
    pairs = np.bincount(y[wrong] * c + pred[wrong], minlength=c * c)
    true = np.bincount(y, minlength=c)
    order = np.argsort(-pairs, kind="stable")[:top]
    return [
        (names[i // c], names[i % c], int(pairs[i]), float(pairs[i] / true[i // c]))
        for i in order
        if pairs[i] > 0
    ]


def print_ensemble(result: EnsembleResult, console: Console, worst: int = 15) -> None:
    m = result.metrics
    summary = Table(title=f"OOF macro-F1 ({m['oof_rows']:,} rows, {', '.join(m['experiments'])})")
    summary.add_column("fold", justify="right")
    summary.add_column("raw", justify="right")
    summary.add_column("adjusted (cross-fitted)", justify="right")
    summary.add_column("τ (from other folds)", justify="right")
    for f, (raw, adj) in enumerate(
        zip(m["oof_macro_f1_per_fold"], m["oof_macro_f1_adjusted_per_fold"], strict=True)
    ):
        summary.add_row(str(f), f"{raw:.4f}", f"{adj:.4f}", f"{m['tau_per_fold'][f]:.2f}")
    summary.add_row(
        "all",
        f"[bold]{m['oof_macro_f1']:.4f}",
        f"[bold]{m['oof_macro_f1_adjusted_crossfit']:.4f}",
        f"{m['tau_test']:.2f}",
    )
    console.print(summary)
    verdict = (
        "applied to the test logits"
        if m["apply_adjustment"]
        else "not applied (no cross-fitted gain)"
    )
    console.print(f"logit adjustment (τ = {m['tau_test']:.2f}): {verdict}")
    if len(m["experiments"]) > 1:
        weights = ", ".join(f"{w:.2f}" for w in m["weights"])
        how = " (fitted; the OOF score uses weights fitted on the other folds)"
        console.print(f"weights: {weights}{how if m['weights_optimized'] else ''}")
    if m["train_only_rows"]:
        console.print(
            f"left out: {len(m['train_only_rows'])} train-only rows (single-row "
            f"classes): {m['train_only_rows'][:10]}"
        )

    table = Table(title=f"per class, worst {worst} of {result.per_class.height}")
    for column in ("label", "category", "train rows", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for row in result.per_class.head(worst).iter_rows(named=True):
        table.add_row(
            str(row["label"]),
            row["category"],
            str(row["train_rows"]),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
        )
    console.print(table)
    pairs = Table(title="most confused (true -> predicted)")
    for column in ("true", "predicted", "rows", "share of true class"):
        pairs.add_column(
            column, justify="right" if column in ("rows", "share of true class") else "left"
        )
    for true_name, pred_name, n, share in result.confused:
        pairs.add_row(true_name, pred_name, str(n), f"{share:.1%}")
    console.print(pairs)
    console.print(f"wrote {result.out_dir}/")
