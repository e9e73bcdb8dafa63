"""`comp runs`: a local leaderboard of every experiment in `runs/` and every ensemble in
`runs/ensembles/`, read from the per-fold outputs alone (`oof.parquet`, `metrics.json`,
`config.yaml`; an ensemble's own `oof.parquet`).

For an experiment the OOF macro-F1 is computed as `comp ensemble` computes it for one model:
the folds checked against the fold file and put together, the logits divided by their
log-loss temperature, τ·log(prior) cross-fitted (fold f's rows adjusted with the τ chosen on
the other folds). An ensemble's figures come from its `oof.parquet` (`logits`,
`logits_adjusted`). The tail macro-F1 is the mean F1 of the classes with fewer training rows
than the threshold; the spread is the standard deviation of the per-fold raw macro-F1.
A run that is unfinished or cannot be read is listed with its state, never as a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from comp.config import Config, short_keys
from comp.ensemble import (
    class_counts_by_fold,
    class_log_prior,
    cross_fit_tau,
    load_experiment,
    logits_array,
    tau_grid,
)
from comp.errors import CompError
from comp.folds import load_fold_assignment
from comp.io import read_json, read_parquet, write_text_atomically
from comp.kinds import get_kind, load_config
from comp.layout import CONFIG, ENSEMBLES, METRICS, OOF, RESERVED, fold_dir
from comp.metrics import macro_f1_from_counts
from comp.progress import cut, fitted_table

# what --sort accepts: the column, and whether larger is better
SORTS = {
    "adjusted": ("adjusted", True),
    "raw": ("raw", True),
    "tail": ("tail_raw", True),
    "tail_adjusted": ("tail_adjusted", True),
    "spread": ("spread", False),
    "wall": ("wall_s", False),
    "name": ("name", False),
}
READ_ERRORS = (CompError, KeyError, TypeError, ValueError, OSError)  # a foreign or broken file
TAIL_SHARE = 5  # default tail: fewer rows than a fifth of the largest class


@dataclass
class Row:
    name: str
    type: str  # experiment | ensemble
    state: str  # finished | unfinished (n/k folds) | no folds | unreadable: why
    folds: int = 0
    raw: float | None = None
    adjusted: float | None = None
    tail_raw: float | None = None
    tail_adjusted: float | None = None
    tail_classes: int = 0
    spread: float | None = None
    wall_s: float | None = None
    keys: dict = field(default_factory=dict)  # the config keys that shape it, flattened
    differs: str = ""  # key=value of the keys whose values differ between rows
    differs_short: str = ""  # the same with short key names and bare values (the table's)
    members: list[str] = field(default_factory=list)  # an ensemble's experiments


def tail_threshold(train_counts: np.ndarray, tail_rows: int | None) -> int:
    return tail_rows if tail_rows is not None else math.ceil(train_counts.max() / TAIL_SHARE)


def oof_scores(
    y: np.ndarray,
    fold_ids: np.ndarray,
    raw: np.ndarray,
    adjusted: np.ndarray,
    train_counts: np.ndarray,
    tail_rows: int | None,
) -> dict:
    """Macro-F1 of raw and adjusted OOF logits over all classes and over the tail classes,
    and the standard deviation of the per-fold raw macro-F1."""
    k, c = int(fold_ids.max()) + 1, raw.shape[1]
    tail = train_counts < tail_threshold(train_counts, tail_rows)
    scores: dict = {"tail_classes": int(tail.sum())}
    for name, logits in (("raw", raw), ("adjusted", adjusted)):
        tp, predicted, true = class_counts_by_fold(y, logits.argmax(1), fold_ids, k, c)
        totals = [x.sum(0) for x in (tp, predicted, true)]
        scores[name] = macro_f1_from_counts(*totals)
        tail_counts = (x[tail] for x in totals)
        scores[f"tail_{name}"] = macro_f1_from_counts(*tail_counts) if tail.any() else None
        if name == "raw":
            per_fold = [macro_f1_from_counts(tp[f], predicted[f], true[f]) for f in range(k)]
            scores["spread"] = float(np.std(per_fold))
    return scores


def _flatten(prefix: str, values: dict) -> dict:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(name, value))
        else:
            flat[name] = value
    return flat


def _run_config(path: Path, runs_dir: str) -> Config:
    """A run's resolved config, its runs folder replaced by the one being listed (the folds
    and files it names are read as they were configured)."""
    config = load_config([path])
    config.train.runs_dir = runs_dir
    return config


def experiment_keys(config: Config) -> dict:
    """What shapes an experiment's folds: its kind's keys, the folds and the train file
    (without content hashes: they describe a folder as it is now, not as it was trained)."""
    shaping = get_kind(config.model.kind).shaping_config(config, content=False)
    keys = {"model.kind": config.model.kind, **_flatten("", shaping)}
    keys.update({f"folds.{k}": getattr(config.folds, k) for k in ("name", "k", "seed")})
    keys["data.train"] = config.data.train
    return keys


def experiment_row(folder: Path, runs_dir: str, settings: Config, tail_rows: int | None) -> Row:
    """One experiment's row; `settings` supplies the ensemble keys (temperature, τ grid)."""
    row = Row(folder.name, "experiment", "no folds")
    configs = sorted(folder.glob(f"fold*/{CONFIG}"))
    if not configs:
        return row
    try:
        config = _run_config(configs[0], runs_dir)
        config.ensemble = dataclasses.replace(settings.ensemble)
        k = config.folds.k
        finished = [f for f in range(k) if (fold_dir(config, f, folder.name) / METRICS).is_file()]
        row.folds, row.keys = len(finished), experiment_keys(config)
        if len(finished) < k:
            row.state = f"unfinished ({len(finished)}/{k} folds)"
            return row
        folds = load_fold_assignment(config)
        p = load_experiment(config, folder.name, folds)
        y, fold_ids = folds.labels[p.rows], folds.fold[p.rows]
        log_prior = class_log_prior(folds.labels, config.data.num_labels)
        _, adjusted, _ = cross_fit_tau(p.oof, y, fold_ids, log_prior, tau_grid(config.ensemble), k)
        counts = np.bincount(folds.labels, minlength=config.data.num_labels)
        _set(row, oof_scores(y, fold_ids, p.oof, adjusted, counts, tail_rows))
        walls = [
            read_json(fold_dir(config, f, folder.name) / METRICS, "comp train")["wall_s"]
            for f in range(k)
        ]
        row.wall_s, row.state = float(sum(walls)), "finished"
    except READ_ERRORS as error:
        row.state = f"unreadable: {_one_line(error)}"
    return row


def ensemble_row(folder: Path, runs_dir: str, tail_rows: int | None) -> Row:
    row = Row(folder.name, "ensemble", "unfinished")
    if not (folder / METRICS).is_file():
        return row
    try:
        config = _run_config(folder / CONFIG, runs_dir)
        metrics = read_json(folder / METRICS, "comp ensemble")
        row.members = [str(m) for m in metrics["experiments"]]
        ensemble = dataclasses.asdict(config.ensemble)
        ensemble.update(experiments=row.members, weights=metrics["weights"])
        ensemble.pop("name")
        row.keys = {**_flatten("ensemble", ensemble), "folds.name": config.folds.name}
        oof = read_parquet(
            folder / OOF, "comp ensemble", ["label", "fold", "logits", "logits_adjusted"]
        )
        folds = load_fold_assignment(config)
        counts = np.bincount(folds.labels, minlength=config.data.num_labels)
        raw, adjusted = (logits_array(oof, c) for c in ("logits", "logits_adjusted"))
        y, fold_ids = oof["label"].to_numpy(), oof["fold"].to_numpy()
        _set(row, oof_scores(y, fold_ids, raw, adjusted, counts, tail_rows))
        row.folds, row.state = int(fold_ids.max()) + 1, "finished"
    except READ_ERRORS as error:
        row.state = f"unreadable: {_one_line(error)}"
    return row


def _set(row: Row, scores: dict) -> None:
    for name, value in scores.items():
        setattr(row, name, value)


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _mark_differences(rows: list[Row]) -> None:
    """Fill each row's `differs` with the keys whose values differ between the rows that have
    them, and an ensemble's wall time with the sum of its experiments' (when all are known)."""
    values: dict[str, set] = {}
    for row in rows:
        for key, value in row.keys.items():
            values.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    differing = [key for key, seen in values.items() if len(seen) > 1]
    short = short_keys(differing)
    walls = {r.name: r.wall_s for r in rows if r.type == "experiment"}
    for row in rows:
        keys = [k for k in differing if k in row.keys]
        row.differs = ", ".join(f"{k}={_short(row.keys[k])}" for k in keys)
        row.differs_short = " ".join(f"{short[k]}={_bare(row.keys[k])}" for k in keys)
        if row.type == "ensemble" and row.members:
            member_walls = [walls.get(m) for m in row.members]
            if all(w is not None for w in member_walls):
                row.wall_s = float(sum(member_walls))


def _short(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _bare(value) -> str:
    """A value without JSON's quotes and brackets: lists joined by commas."""
    if isinstance(value, list):
        return ",".join(_bare(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


def leaderboard(config: Config, tail_rows: int | None = None) -> list[Row]:
    """A row per experiment folder of `train.runs_dir` and per ensemble, unsorted."""
    runs = Path(config.train.runs_dir)
    if not runs.is_dir():
        raise CompError(f"{runs}: no runs folder (train.runs_dir); train something first")
    if tail_rows is not None and tail_rows < 1:
        raise CompError(f"--tail-rows {tail_rows}: must be at least 1")
    runs_dir = str(runs)
    rows = [
        experiment_row(folder, runs_dir, config, tail_rows)
        for folder in sorted(runs.iterdir())
        if folder.is_dir() and folder.name not in RESERVED
    ]
    ensembles = runs / ENSEMBLES
    if ensembles.is_dir():
        rows += [
            ensemble_row(folder, runs_dir, tail_rows)
            for folder in sorted(ensembles.iterdir())
            if folder.is_dir()
        ]
    _mark_differences(rows)
    return rows


def sort_rows(rows: list[Row], sort: str) -> list[Row]:
    """Best first by `sort` (a key of SORTS); rows without that figure last, by name."""
    if sort not in SORTS:
        raise CompError(f"--sort {sort!r}: expected one of {', '.join(SORTS)}")
    column, larger_better = SORTS[sort]
    known = [r for r in rows if getattr(r, column) is not None]
    unknown = sorted((r for r in rows if getattr(r, column) is None), key=lambda r: r.name)
    known.sort(key=lambda r: getattr(r, column), reverse=larger_better)
    return known + unknown


CSV_COLUMNS = (
    "name", "type", "state", "folds", "raw", "adjusted", "tail_raw", "tail_adjusted",
    "tail_classes", "spread", "wall_s", "differs",
)  # fmt: skip


def write_csv(rows: list[Row], path: Path) -> None:
    import polars as pl

    texts, counts = ("name", "type", "state", "differs"), ("folds", "tail_classes")
    schema = {
        c: pl.Utf8 if c in texts else pl.Int64 if c in counts else pl.Float64 for c in CSV_COLUMNS
    }
    frame = pl.DataFrame({c: [getattr(r, c) for r in rows] for c in CSV_COLUMNS}, schema=schema)
    write_text_atomically(path, frame.write_csv())


def _figure(value: float | None, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)


def _table_state(state: str) -> str:
    """`unfinished (3/5 folds)` as `3/5 folds`: the table's narrow state column."""
    return state.removeprefix("unfinished (").removesuffix(")") if "folds)" in state else state


def _pair(a: float | None, b: float | None) -> str:
    return "" if a is None else f"{a:.4f}/{b:.4f}"


def print_leaderboard(rows: list[Row], console: Console, tail_rows: int | None) -> None:
    """One line a row, whole names; `differs` is cut to the width the others leave (whole in
    --csv)."""
    tail = f"< {tail_rows} rows" if tail_rows is not None else f"< largest / {TAIL_SHARE}"
    headers = ["name", "type", "state", "OOF", "tail", "± folds", "wall s", "differs"]
    cells = [
        [
            r.name,
            "ens" if r.type == "ensemble" else "exp",
            cut(_table_state(r.state), 14),
            _pair(r.raw, r.adjusted),
            _pair(r.tail_raw, r.tail_adjusted),
            _figure(r.spread),
            _figure(r.wall_s, ".0f"),
            r.differs_short,
        ]
        for r in rows
    ]
    title = f"runs: OOF macro-F1, raw/adjusted (cross-fitted τ; tail: classes {tail})"
    left = {"name", "type", "state", "differs"}
    console.print(fitted_table(title, headers, cells, left, console.width))


def runs_command(
    config: Config, sort: str, csv: Path | None, tail_rows: int | None, console: Console
) -> list[Row]:
    """`comp runs`: the leaderboard, sorted, printed and (with `csv`) written."""
    rows = sort_rows(leaderboard(config, tail_rows), sort)
    print_leaderboard(rows, console, tail_rows)
    if csv is not None:
        write_csv(rows, csv)
        console.print(f"wrote {csv}")
    return rows
