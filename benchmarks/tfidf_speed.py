"""Speed and score of `model.kind: tfidf` on the full-size demo competition (27,950 train rows).

Builds the demo in a temporary folder, makes 5 folds and times `train_folds` over all of
them (data loading, features, fitting, scoring 5,590 validation and 18,635 test rows a fold, and
writing the fold files), then prints each fold's OOF macro-F1, the overall OOF macro-F1 and the
total wall time. Target: all 5 folds under 120 s on 2 CPU cores.

    python benchmarks/tfidf_speed.py [--config configs/tfidf.yaml] [--set tfidf.c=1.0 ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from comp.kinds import load_config
from comp.layout import OOF, fold_dir
from comp.metrics import macro_f1
from comp.runs.frame import train_folds
from comp.workspace import prepare_demo

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 120.0


def temp_config(base: str, overrides: list[str], work: Path):
    """The config with every path moved into `work` (the demo at full size)."""
    demo = work / "demo"
    moved = [
        f"demo.out_dir={demo}",
        "demo.scale=1.0",
        f"data.train={demo / 'shared_task_train.csv'}",
        f"data.solution={demo / 'solution.csv'}",
        f"folds.dir={work / 'folds'}",
        f"train.runs_dir={work / 'runs'}",
        "model.kind=tfidf",
    ]
    config = load_config([base], [*moved, *overrides])
    for test_set in config.data.test_sets:
        test_set.path = str(demo / Path(test_set.path).name)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "tfidf.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="comp-tfidf-") as tmp:
        config = temp_config(args.config, args.overrides, Path(tmp))
        prepare_demo(config)
        folds = list(range(config.folds.k))
        started = time.perf_counter()
        results = train_folds(config, folds, None, True, console)
        total_s = time.perf_counter() - started
        oof = pl.concat([pl.read_parquet(fold_dir(config, k) / OOF) for k in folds])
        logits = np.stack(oof["logits"].to_numpy())
        overall = macro_f1(oof["label"].to_numpy(), logits.argmax(1), config.data.num_labels)

    t = config.tfidf
    title = (
        f"tfidf_speed.py: {platform.machine()}, {os.cpu_count()} cores; {t.classifier} C={t.c}, "
        f"word 1-{t.word_ngram_max}, char {t.char_ngram_min}-{t.char_ngram_max}, "
        f"min_df {t.min_df}"
    )
    table = Table(title=title)
    for column in ("fold", "OOF macro-F1", "wall s", "samples/s"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(str(r.fold), f"{r.macro_f1:.4f}", f"{r.wall_s:.1f}", f"{r.samples_per_s:.0f}")
    table.add_row("all", f"{overall:.4f}", f"{total_s:.1f}", "", style="bold")
    console.print(table)
    verdict = "within" if total_s < TARGET_S else "OVER"
    console.print(
        f"overall OOF macro-F1 {overall:.4f}; {len(folds)} folds in {total_s:.1f} s "
        f"({verdict} the {TARGET_S:.0f} s target)"
    )


if __name__ == "__main__":
    main()
