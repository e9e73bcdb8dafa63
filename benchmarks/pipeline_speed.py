"""Wall time of the light commands at the real competition's size, as a user runs them.

- `comp --help` (target: under 0.3 s);
- `comp make-folds` on the full-size demo competition, 27,950 rows, CSV reading and validation
  and duplicate grouping included (target: under 3 s; it was 2 s before grouping);
- `comp ensemble` + `comp submit` over 5 folds of 27,950 OOF rows and 18,634 test rows x 82
  classes, tau cross-fitting included (target: under 2 s). The fold outputs are written by this
  script in the layout `comp train` writes, with random logits (training is not what is timed).

Each command runs as a subprocess (interpreter start-up included); the best of --repeat runs is
reported, since these machines are shared and noisy.

    python benchmarks/pipeline_speed.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from rich.console import Console
from rich.table import Table

from comp.config import dump_config
from comp.io import sha256_file
from comp.kinds import load_config

ROOT = Path(__file__).resolve().parents[1]
COMP = [sys.executable, "-m", "comp.cli"]


def timed(args: list[str], cwd: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(args, cwd=cwd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def fake_fold_outputs(work: Path, config) -> None:
    folds = pl.read_csv(work / "folds" / "demo.csv")
    test_ids = {
        t.name: pl.read_csv(work / t.path, infer_schema=False)["Id"].to_list()
        for t in config.data.test_sets
    }
    sha = sha256_file(work / "folds" / "demo.csv")
    rng = np.random.default_rng(0)
    c = config.data.num_labels
    for k in range(config.folds.k):
        out = work / "runs" / config.train.experiment / f"fold{k}"
        out.mkdir(parents=True)
        part = folds.filter(pl.col("fold") == k)
        onehot = np.eye(c, dtype=np.float32)[part["label"].to_numpy()]
        logits = rng.normal(size=(part.height, c)).astype(np.float32) + 2.0 * onehot
        part.with_columns(pl.Series("logits", logits, dtype=pl.Array(pl.Float32, c))).write_parquet(
            out / "oof.parquet"
        )
        sets = [name for name, ids in test_ids.items() for _ in ids]
        ids = [i for values in test_ids.values() for i in values]
        test_logits = rng.normal(size=(len(ids), c)).astype(np.float32)
        pl.DataFrame({"set": sets, "Id": ids}).with_columns(
            pl.Series("logits", test_logits, dtype=pl.Array(pl.Float32, c))
        ).write_parquet(out / "test_logits.parquet")
        (out / "metrics.json").write_text(json.dumps({"folds_sha256": sha}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="comp-speed-"))
    config = load_config([ROOT / "configs" / "demo.yaml"], ["demo.scale=1.0"])
    (work / "config.yaml").write_text(dump_config(config), encoding="utf-8")
    base = [*COMP]
    cfg = ["--config", "config.yaml"]
    subprocess.run([*base, "demo-data", *cfg], cwd=work, check=True, capture_output=True)
    rows = len(pl.read_csv(work / config.data.train, columns=["label"]))
    results = [("comp --help", timed([*base, "--help"], work, args.repeat), 0.3)]
    results.append(
        (
            f"comp make-folds ({rows:,} rows)",
            timed([*base, "make-folds", *cfg], work, args.repeat),
            3.0,
        )
    )
    fake_fold_outputs(work, config)
    script = (
        f"{' '.join(base)} ensemble --config config.yaml && "
        f"{' '.join(base)} submit --combined --config config.yaml"
    )
    results.append(
        (
            "comp ensemble + comp submit (5 folds)",
            timed(["bash", "-c", script], work, args.repeat),
            2.0,
        )
    )
    meta = yaml.safe_load((work / "runs" / "ensembles" / "demo" / "config.yaml").read_text())
    assert meta["ensemble"]["name"] == "demo"

    table = Table(
        title=f"pipeline_speed.py: {platform.machine()}, {os.cpu_count()} cores, "
        f"best of {args.repeat}"
    )
    for column in ("command", "wall s", "target s"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for name, seconds, target in results:
        table.add_row(name, f"{seconds:.2f}", f"{target:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
