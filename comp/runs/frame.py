"""The fold frame, shared by every model kind: decide which folds are finished, load the data and
folds once, let the configured kind fit each remaining fold, and write its outputs beside the
resolved config.

A fold is finished when its metrics.json exists and was made from the same train file, the same
folds and the same fingerprint: the sha256 of the config values that shape that kind's model
(`fold_fingerprint`). Anything else retrains it; `--force` always does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from comp.config import ADDED_KEY_DEFAULTS, Config
from comp.data import load_tests, load_train
from comp.errors import CompError
from comp.events import Events, FoldStopped, Listener
from comp.extra import add_extra_train, extra_shaping, print_extra_report
from comp.folds import folds_paths, load_folds
from comp.interrupt import Interrupted
from comp.io import (
    UnreadableFile,
    read_json,
    remove_stale_temp_files,
    sha256_file,
    write_json_atomically,
)
from comp.kinds import (
    FoldFit,
    KindRun,
    MadeWith,
    ModelKind,
    RunInputs,
    derived_configs,
    get_kind,
)
from comp.layout import CACHE, METRICS, OOF, STOPPED, TEST_LOGITS, experiment_dir, fold_dir
from comp.locks import folder_lock
from comp.runs.outputs import write_config_file, write_fold_outputs
from comp.tensorboard import EVENT_FILES, TensorBoard

Listen = Callable[[int], Sequence[Listener]]  # the listeners of fold K's training events

# The data keys that make every kind's inputs and labels (the files are checked by sha256).
INPUT_KEYS = ("text_column", "label_column", "question_marker", "answer_marker")


@dataclass
class FoldResult:
    fold: int
    macro_f1: float
    best_step: int | None  # None: the kind trains no steps
    wall_s: float
    samples_per_s: float
    tokens_per_s: float | None  # None: the kind counts no tokens
    skipped: bool = False

    @classmethod
    def from_metrics(cls, metrics: dict, skipped: bool = False) -> FoldResult:
        return cls(
            metrics["fold"],
            metrics["val_macro_f1"],
            metrics.get("best_step"),
            metrics["wall_s"],
            metrics["samples_per_s"],
            metrics.get("tokens_per_s"),
            skipped,
        )


def without_added_defaults(values: dict, prefix: str = "") -> dict:
    """`values` (nested by section) less the keys of ADDED_KEY_DEFAULTS at their defaults."""
    kept = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            kept[key] = without_added_defaults(value, name + ".")
        elif not any(
            (name == added or name.endswith("." + added)) and value == default
            for added, default in ADDED_KEY_DEFAULTS.items()
        ):
            kept[key] = value
    return kept


def fold_fingerprint(config: Config) -> str:
    """sha256 of what shapes a fold's model: the kind, the label count, the data keys that make
    inputs and labels, and the kind's own config values (`shaping_config`)."""
    kind = get_kind(config.model.kind)
    shaping = {
        "kind": config.model.kind,
        "num_labels": config.data.num_labels,
        "inputs": {key: getattr(config.data, key) for key in INPUT_KEYS},
        **without_added_defaults(kind.shaping_config(config)),
        **extra_shaping(config),  # nothing without data.extra_train
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()


def process_writes() -> bool:
    """False in torchrun ranks other than 0: they train, rank 0 alone reads and writes files."""
    return int(os.environ.get("RANK", "0")) == 0


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


def _sha256_if_file(path: Path) -> str:
    return sha256_file(path) if path.is_file() else ""


def data_hashes(config: Config) -> tuple[str, str]:
    """The sha256 of the folds file and of the train file ("" where absent): a finished fold's
    metrics must name both (`finished_metrics`)."""
    return _sha256_if_file(folds_paths(config)[0]), _sha256_if_file(Path(config.data.train))


def finished_metrics(
    config: Config, fold: int, folds_sha256: str, train_sha256: str, fingerprint: str
) -> dict | None:
    """The fold's metrics if it finished on this train file, these folds and this fingerprint;
    None if it must (re)train."""
    path = fold_dir(config, fold) / METRICS
    if not path.is_file():
        return None
    metrics = read_json(path, f"comp train --fold {fold} --force")
    now = MadeWith(folds_sha256, train_sha256, fingerprint)
    return metrics if MadeWith.recorded(metrics) == now else None


def clear_fold(folder: Path, kind_files: tuple[str, ...]) -> None:
    """Remove a fold's outputs, its TensorBoard events and its kind's files (and folders): it
    starts over from nothing."""
    named = [folder / name for name in (METRICS, STOPPED, OOF, TEST_LOGITS, *kind_files)]
    remove_paths(named + sorted(folder.glob(EVENT_FILES)))


def remove_paths(paths: list[Path]) -> list[Path]:
    """Remove each file or folder of `paths` that exists; those that did."""
    removed = []
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def load_run_inputs(config: Config, fingerprint: str, cache_dir: Path | None = None) -> RunInputs:
    """The data, folds and test sets a run trains on (loaded once; `comp tune` reuses them for
    every trial), with its kinds' cache in `cache_dir` (default: the experiment's)."""
    train = load_train(config.data)
    folds = load_folds(config, train)
    tests = load_tests(config)
    train, folds, extra = add_extra_train(config, train, folds, tests)
    return RunInputs(
        config=config,
        train=train,
        tests=tests,
        folds=folds,
        folds_sha256=sha256_file(folds_paths(config)[0]),
        fingerprint=fingerprint,
        cache_dir=cache_dir or experiment_dir(config) / CACHE,
        writes=process_writes(),
        extra=extra,
    )


def _finished_folds(
    config: Config, folds: list[int], fingerprint: str, console: Console
) -> dict[int, FoldResult]:
    """The folds that need no training, reported and touched (newer than the config file, so
    make sees them checked against it)."""
    hashes, done = None, {}
    for fold in folds:
        if not (fold_dir(config, fold) / METRICS).is_file():
            continue  # nothing to check (a new trial's folds): the data files are not hashed
        hashes = hashes or data_hashes(config)
        try:
            saved = finished_metrics(config, fold, *hashes, fingerprint)
        except UnreadableFile as error:  # a truncated or foreign metrics.json: unfinished
            console.print(f"fold {fold}: {error.path} is unreadable ({error.reason}); retraining")
            continue
        if saved is None:
            continue
        console.print(
            f"fold {fold}: finished before (val macro-F1 {saved['val_macro_f1']:.4f}); "
            "skipped, --force to retrain"
        )
        if process_writes():
            (fold_dir(config, fold) / METRICS).touch()
        done[fold] = FoldResult.from_metrics(saved, skipped=True)
    return done


def _fit(run: KindRun, inputs: RunInputs, fold: int, out: Path, listen: Listen) -> FoldFit | None:
    """The kind's fit of one fold, its events going to `listen(fold)` (and TensorBoard with
    train.tensorboard); a fold a listener stopped leaves stopped.json and raises FoldStopped."""
    events = Events(listen(fold) if inputs.writes else ())
    if inputs.config.train.tensorboard and inputs.writes:
        events.subscribe(TensorBoard(out))
    try:
        return run.fit_fold(fold, out, events)
    except Interrupted as stop:
        if stop.detailed:  # a loop that saved its checkpoint says so itself
            raise
        raise Interrupted(
            stop.signum,
            f"fold {fold} of {inputs.config.train.experiment}: {stop} before its end; nothing of "
            "it was written, and the same command trains it again",
        ) from None
    except FoldStopped as stopped:
        if inputs.writes:
            write_json_atomically(out / STOPPED, stopped.record())
        raise
    finally:
        events.close()


def _train_fold(
    kind: ModelKind,
    run: KindRun,
    inputs: RunInputs,
    fold: int,
    force: bool,
    console: Console,
    listen: Listen,
) -> FoldResult | None:
    """Fit one fold with the kind and write its outputs (rank 0 only under torchrun). A forced
    or stale fold is cleared here, once the run has started: a run that cannot start (no GPU,
    bad data) leaves every fold as it was."""
    config = inputs.config
    out = fold_dir(config, fold)
    if inputs.writes:
        if force or (out / METRICS).is_file():
            clear_fold(out, kind.FOLD_FILES)
        remove_stale_temp_files(out)  # of killed writers: this process holds the fold's lock
        out.mkdir(parents=True, exist_ok=True)
        write_config_file(config, out)
    started = time.perf_counter()
    fit = _fit(run, inputs, fold, out, listen)
    if not inputs.writes:  # a torchrun rank other than 0
        return None
    extra = {"model_kind": config.model.kind, "wall_s": time.perf_counter() - started}
    if inputs.extra is not None:
        extra["extra_train"] = inputs.extra.fold_report(fold)
    metrics = write_fold_outputs(out, fold, inputs, fit, extra)
    for name in (*kind.SCRATCH_FILES, STOPPED):
        (out / name).unlink(missing_ok=True)
    console.print(
        f"fold {fold}: val macro-F1 {metrics['val_macro_f1']:.4f} ({metrics['wall_s']:.1f} s)"
    )
    return FoldResult.from_metrics(metrics)


def no_listeners(fold: int) -> list[Listener]:
    return []


def train_folds(
    config: Config,
    folds: list[int],
    device: str | None,
    force: bool,
    console: Console,
    *,
    listen: Listen = no_listeners,
    loaded: RunInputs | None = None,
    table: bool = True,
) -> list[FoldResult]:
    """Train the given folds of the configured kind; finished ones are skipped unless `force`.
    An interrupted fold keeps its kind's files (a checkpoint) and resumes; a forced or stale one
    starts over. Each fold is locked while this process may train it: a second process asking
    for it stops at once (BusyError). `listen(fold)` gives the listeners of that fold's
    training events (`comp.events`); one that stops a fold ends the call with FoldStopped.
    `loaded`: inputs loaded before for a config with the same data, folds and dedup keys (a
    tuning worker's), used instead of loading them again. `table`: print the results table."""
    kind = get_kind(config.model.kind)
    fingerprint = fold_fingerprint(config)
    writes = process_writes()
    if not writes:
        console = Console(quiet=True)
    with ExitStack() as held:
        locks = {fold: held.enter_context(ExitStack()) for fold in folds}
        if writes:  # torchrun ranks other than 0 neither write nor lock
            for fold in folds:
                description = f"fold {fold} of {config.train.experiment}"
                locks[fold].enter_context(folder_lock(fold_dir(config, fold), description))
        results = {} if force else _finished_folds(config, folds, fingerprint, console)
        for fold in results:
            locks[fold].close()
        todo = [fold for fold in folds if fold not in results]
        if todo:
            inputs = (
                load_run_inputs(config, fingerprint)
                if loaded is None
                else dataclasses.replace(loaded, config=config, fingerprint=fingerprint)
            )
            if inputs.extra is not None and writes:
                print_extra_report(inputs.extra, config.folds.k, console)
            run = kind.start(inputs, device, console)
            try:
                for fold in todo:
                    result = _train_fold(kind, run, inputs, fold, force, console, listen)
                    if result is not None:
                        results[fold] = result
                    locks[fold].close()
            finally:
                run.close()
    ordered = [results[fold] for fold in sorted(results)]
    if writes and table:
        print_results(ordered, console)
    for derived in derived_configs(config):
        console.print(
            f"[bold]{derived.train.experiment}[/] ({derived.model.kind}), from these folds"
        )
        train_folds(derived, folds, device, force, console)
    return ordered


RESULT_COLUMNS = {  # the table's columns: what each shows of a FoldResult (None: not measured)
    "fold": lambda r: str(r.fold),
    "val macro-F1": lambda r: f"{r.macro_f1:.4f}",
    "best step": lambda r: None if r.best_step is None else str(r.best_step),
    "wall s": lambda r: f"{r.wall_s:.1f}",
    "samples/s": lambda r: f"{r.samples_per_s:.1f}",
    "tokens/s": lambda r: None if r.tokens_per_s is None else f"{r.tokens_per_s:,.0f}",
    "note": lambda r: "skipped" if r.skipped else "",
}


def print_results(results: list[FoldResult], console: Console) -> None:
    """The folds' results; a column of a figure no fold measured is left out, and a figure one
    fold did not measure is blank, never a zero."""
    rows = sorted(results, key=lambda r: r.fold)
    shown = {
        name: cell
        for name, cell in RESULT_COLUMNS.items()
        if any(cell(r) is not None for r in rows) or not rows
    }
    table = Table(title="training results")
    for column in shown:
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(*(cell(r) or "" for cell in shown.values()))
    console.print(table)
