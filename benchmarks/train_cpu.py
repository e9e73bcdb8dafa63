"""Training throughput of configs/demo.yaml on this machine's CPU cores.

Builds the demo competition, the tiny backbone and the folds in a temporary folder exactly as
`make all` does, trains fold 0 for --steps steps (FGM and LDAM/DRW as configured) and prints
samples/s and tokens/s from the fold's metrics.json, with and without FGM, for the sync-free
step (the default) and the eager one.

    python benchmarks/train_cpu.py [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from comp.kinds import load_config
from comp.layout import METRICS, fold_dir
from comp.runs.frame import train_folds
from comp.workspace import prepare_demo, workspace_overrides

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="comp-bench-"))
    config = load_config(
        [ROOT / "configs" / "demo.yaml"],
        [
            *workspace_overrides(work),
            f"train.steps={args.steps}",
            f"train.eval_every={args.steps}",
            f"train.checkpoint_every={10 * args.steps}",
        ],
    )
    prepare_demo(config, work / "tiny")
    table = Table(
        title=f"configs/demo.yaml on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"batch {config.train.batch_size}, {args.steps} steps"
    )
    for column in ("run", "samples/s", "tokens/s", "peak MiB"):
        table.add_column(column, justify="right")
    for fgm in (True, False):
        for step in ("sync_free", "eager"):
            config.train.fgm, config.train.step = fgm, step
            config.train.experiment = f"fgm_{fgm}_{step}"
            train_folds(config, [0], "cpu", True, Console(quiet=True))
            m = json.loads((fold_dir(config, 0) / METRICS).read_text())
            table.add_row(
                f"FGM {'on' if fgm else 'off'}, {step.replace('_', '-')} step",
                f"{m['samples_per_s']:.1f}",
                f"{m['tokens_per_s']:,.0f}",
                f"{m['peak_memory_mb']:,.0f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
