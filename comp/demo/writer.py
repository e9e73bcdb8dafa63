"""Write the demo competition (`generator`) to disk in the AbjadMed file format, atomically."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from comp.config import Config, write_config
from comp.demo.generator import generate_demo
from comp.io import write_all_atomically

TRAIN_FILE = "shared_task_train.csv"
PUBLIC_FILE = "shared_task_test_public.csv"
PRIVATE_FILE = "shared_task_test_private.csv"
SOLUTION_FILE = "solution.csv"
PLANTED_FILE = "planted_duplicates.csv"  # the audit's answer key: which rows repeat which


def write_demo_files(config: Config, console: Console) -> dict[str, Path]:
    """Generate the demo competition for config.demo and write its files plus the resolved
    config into config.demo.out_dir; returns the written paths by role."""
    demo = config.demo
    competition = generate_demo(
        scale=demo.scale, seed=demo.seed, min_class_rows=demo.min_class_rows
    )
    out = Path(demo.out_dir)
    frames = {
        "train": (out / TRAIN_FILE, competition.train),
        "test_public": (out / PUBLIC_FILE, competition.test_public),
        "test_private": (out / PRIVATE_FILE, competition.test_private),
        "solution": (out / SOLUTION_FILE, competition.solution),
        "planted": (out / PLANTED_FILE, competition.planted),
    }
    writers = {path: frame.write_csv for path, frame in frames.values()}
    writers[out / "config.yaml"] = lambda p: write_config(config, p)
    write_all_atomically(writers)

    table = Table(title=f"demo competition (scale {demo.scale}, seed {demo.seed})")
    for column in ("file", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for path, frame in frames.values():
        table.add_row(str(path), f"{frame.height:,}")
    console.print(table)
    counts = competition.train["label"].value_counts()["count"]
    console.print(
        f"{competition.train['label'].n_unique()} classes, {counts.max()} to "
        f"{counts.min()} train rows per class; {competition.planted.height:,} planted duplicate "
        f"rows (see {PLANTED_FILE})"
    )
    return {role: path for role, (path, _) in frames.items()}
