"""What `comp pretrain` costs and buys on the demo competition (configs/demo.yaml with the
configs/demo_tapt.yaml layer), on this machine's CPU cores.

Builds the demo competition (train and both test files), its folds and the tiny backbone in a
temporary folder as `make all` does, times `comp pretrain` with the config's `pretrain` section,
then trains fold 0 with the config's `train` section from the random tiny backbone and from the
pretrained one, once per `train.seed` in --seeds (fold 0's macro-F1 moves by several points from
one seed to another at 300 steps, so one seed cannot tell a +0.02 gain from noise). Prints the
pretraining time (with the load average, since the box is shared) and the validation
macro-F1s, per seed and on average.

    python benchmarks/pretrain_demo.py [--seeds 42,1,2] [--random-set train.lr=2e-3 ...]
        [--set KEY=VALUE ...]

--set applies to everything; --random-set only to the random-init run (e.g. the lr that was
tuned for it, to compare each backbone at its best).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from comp.kinds import load_config
from comp.neural.files import PRETRAIN_METRICS
from comp.pretrain.run import pretrain
from comp.progress import make_console
from comp.runs.frame import train_folds
from comp.workspace import prepare_demo

ROOT = Path(__file__).resolve().parents[1]


def workspace_config(work: Path, overrides: list[str]):
    """configs/demo.yaml with every path under `work` (test sets included)."""
    demo = work / "demo"
    paths = [
        f"demo.out_dir={demo}",
        f"data.train={demo}/shared_task_train.csv",
        f"data.solution={demo}/solution.csv",
        f"data.test_sets=[{{name: public, path: {demo}/shared_task_test_public.csv}}, "
        f"{{name: private, path: {demo}/shared_task_test_private.csv}}]",
        f"folds.dir={work}/folds",
        f"pretrain.backbone={work}/tiny-bert",
        f"pretrain.out_dir={work}/tiny-bert-tapt",
        f"model.backbone={work}/tiny-bert-tapt",
        f"train.runs_dir={work}/runs",
    ]
    layers = [ROOT / "configs" / "demo.yaml", ROOT / "configs" / "demo_tapt.yaml"]
    return load_config(layers, [*paths, *overrides])


def fold0(work: Path, experiment: str, backbone: Path, overrides: list[str]) -> tuple[float, float]:
    """Validation macro-F1 and wall seconds of fold 0 trained from `backbone`."""
    settings = [*overrides, f"train.experiment={experiment}", f"model.backbone={backbone}"]
    config = workspace_config(work, settings)
    started = time.perf_counter()
    result = train_folds(config, [0], "cpu", True, Console(quiet=True))[0]
    return result.macro_f1, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--random-set", dest="random", action="append", default=[])
    parser.add_argument(
        "--work", type=Path, help="Workspace folder (default: a new temporary one)."
    )
    parser.add_argument("--seeds", default="42,1,2", help="train.seed values, comma-separated.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="comp-pretrain-"))
    config = workspace_config(work, args.overrides)
    prepare_demo(config, work / "tiny-bert", max_len=config.model.max_len, seed=config.train.seed)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    pretrain(config, "cpu", True, Console(quiet=True))
    pretrain_s = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    metrics = json.loads((work / "tiny-bert-tapt" / PRETRAIN_METRICS).read_text())
    tiny, tapt = work / "tiny-bert", work / "tiny-bert-tapt"
    seeds = [int(seed) for seed in args.seeds.split(",")]
    runs = {"random init": (tiny, args.random), "comp pretrain": (tapt, [])}
    scores: dict[str, list[float]] = {name: [] for name in runs}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for seed in seeds:
        for name, (backbone, extra) in runs.items():
            experiment = f"{name.split()[-1]}_seed{seed}"
            settings = [*args.overrides, *extra, f"train.seed={seed}"]
            f1, wall = fold0(work, experiment, backbone, settings)
            scores[name].append(f1)
            seconds[name].append(wall)

    p = config.pretrain
    console = make_console()
    console.print(
        f"comp pretrain: {metrics['steps']} steps at batch {p.batch_size} (lr {p.lr:g}) over "
        f"{sum(metrics['rows'].values()):,} rows in {pretrain_s:.1f} s ({metrics['train_s']:.1f} s "
        f"in the loop, {metrics['samples_per_s']:.1f} samples/s), masked-LM loss "
        f"{metrics['history'][0]['loss']:.3f} -> {metrics['final_loss']:.3f}; load average "
        f"{load_before:.2f} before, {load_after:.2f} after"
    )
    table = Table(title=f"fold 0 of configs/demo.yaml ({config.train.steps} steps), {work}")
    for column in ("backbone", *(f"seed {seed}" for seed in seeds), "mean", "std", "wall s/run"):
        table.add_column(column, justify="right")
    for name, values in scores.items():
        extra = f" ({' '.join(runs[name][1])})" if runs[name][1] else ""
        table.add_row(
            name + extra,
            *(f"{v:.4f}" for v in values),
            f"{statistics.mean(values):.4f}",
            f"{statistics.pstdev(values):.4f}",
            f"{statistics.mean(seconds[name]):.1f}",
        )
    console.print(table)
    gains = [b - a for a, b in zip(*scores.values(), strict=True)]
    console.print(
        f"gain per seed: {', '.join(f'{g:+.4f}' for g in gains)}; mean "
        f"{statistics.mean(gains):+.4f} (target: at least +0.02)"
    )


if __name__ == "__main__":
    main()
