"""`comp predict`: run every finished fold on test sets that arrived after training.

Each fold is reloaded from its folder alone by the model kind that trained it (the kind named in
the fold's config.yaml), and the new logits are merged into its `test_logits.parquet` exactly as
`comp train` writes them, so `comp ensemble` and `comp submit` need no retraining.
"""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.progress import Progress

from comp.config import Config
from comp.data import TestData, load_test
from comp.errors import CompError
from comp.io import read_parquet, write_all_atomically
from comp.kinds import derived_configs, get_kind, load_config
from comp.layout import CACHE, CONFIG, TEST_LOGITS, experiment_dir, fold_dir, retrain_command
from comp.runs.outputs import tests_logits_frame


def _tests_to_predict(config: Config, set_names: list[str]) -> dict[str, TestData]:
    known = {t.name: t for t in config.data.test_sets}
    unknown = [name for name in set_names if name not in known]
    if unknown:
        raise CompError(
            f"--test-set {unknown[0]!r}: not in data.test_sets "
            f"({', '.join(known) or 'none configured'})"
        )
    return {name: load_test(config.data, known[name]) for name in (set_names or known)}


def _in_config_order(frame: pl.DataFrame, config: Config) -> pl.DataFrame:
    order = {t.name: i for i, t in enumerate(config.data.test_sets)}
    return (
        frame.with_columns(
            pl.col("set").replace_strict(order, default=len(order)).alias("_order"),
            pl.int_range(pl.len()).alias("_row"),
        )
        .sort("_order", "_row")
        .drop("_order", "_row")
    )


def predict_folds(
    config: Config,
    set_names: list[str],
    device: str | None,
    force: bool,
    console: Console,
) -> dict[int, list[str]]:
    """Add the named test sets (default: every configured set a fold lacks) to each fold's
    test_logits.parquet, and to the experiments derived from it (`<experiment>_knn`); returns
    the sets predicted per fold of this experiment."""
    tests = _tests_to_predict(config, set_names)
    done: dict[int, list[str]] = {}
    with Progress(console=console) as progress:
        task = progress.add_task("predict", total=config.folds.k)
        for k in range(config.folds.k):
            folder = fold_dir(config, k)
            path = folder / TEST_LOGITS
            if not path.is_file():
                raise CompError(
                    f"{folder}: fold {k} has not finished training; run "
                    f"`comp train --fold {k}` first"
                )
            existing = read_parquet(path, retrain_command(folder))
            have = set(existing["set"].unique().to_list())
            todo = [tests[n] for n in tests if force or set_names or n not in have]
            if todo:
                fold_config = load_config([folder / CONFIG])
                kind = get_kind(fold_config.model.kind)
                cache = experiment_dir(config) / CACHE
                device_name = device or config.train.device
                logits = kind.predict(folder, fold_config, todo, device_name, cache)
                new = tests_logits_frame(todo, logits, config.data.num_labels)
                kept = existing.filter(~pl.col("set").is_in([t.name for t in todo]))
                merged = _in_config_order(pl.concat([kept, new]), config)
                write_all_atomically({path: merged.write_parquet})
            done[k] = [t.name for t in todo]
            progress.advance(task)
    for k, names in done.items():
        console.print(
            f"fold {k}: " + (f"predicted {', '.join(names)}" if names else "nothing to predict")
        )
    for derived in derived_configs(config):
        console.print(f"[bold]{derived.train.experiment}[/] ({derived.model.kind})")
        predict_folds(derived, set_names, device, force, console)
    return done
