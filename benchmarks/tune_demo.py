"""Issue 19's measurements: does `comp tune` find a good setting from a bad one, what does pruning
save, and what does a trial cost beyond its folds' own training?

In a demo workspace (the demo competition, its tiny backbone and folds, as `make all` builds them),
every step a `comp` command as a user types it:

1. the hand-set demo default (configs/demo.yaml) on folds 1-4, the folds the search never sees;
2. a 12-trial search of configs/tune/demo_tiny.yaml on fold 0 from `train.lr=1e-5`, pruned
   (median), then the same search unpruned (`tune.pruner=none`), one after the other;
3. `comp tune --confirm 1`: the best trial and trial 0 (the bad start) on folds 1-4;
4. a TF-IDF study (configs/tune/demo_tfidf.yaml): each trial's wall time less its folds' own.

    python benchmarks/tune_demo.py [--work DIR] [--trials 12]

Prints a table and writes DIR/tune_demo.json. Every figure times commands that train, so a
--work that holds runs/ is refused (a rerun would time skipped folds and trials); the demo data,
folds and backbone of an earlier --work are reused.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from comp.layout import METRICS, trial_experiment

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
TINY_STUDY = ROOT / "configs" / "tune" / "demo_tiny.yaml"
TFIDF_STUDY = ROOT / "configs" / "tune" / "demo_tfidf.yaml"
UNSEEN = [1, 2, 3, 4]


def comp(work: Path, *args: str) -> float:
    """Run `comp ARGS` in `work` (its output in work/logs/); the wall seconds it took."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    name = "_".join(a.strip("-").replace("/", "_") for a in args[:3] if not a.startswith("/"))
    started = time.perf_counter()
    with open(logs / f"{name}.log", "a", encoding="utf-8") as log:
        done = subprocess.run([sys.executable, "-m", "comp.cli", *args], cwd=work, stdout=log,
                              stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"comp {' '.join(args)} failed; see {logs / name}.log")
    return time.perf_counter() - started


def fold_scores(work: Path, experiment: str, folds: list[int]) -> list[float]:
    return [
        json.loads((work / "runs" / experiment / f"fold{f}" / METRICS).read_text())["val_macro_f1"]
        for f in folds
    ]


def prepare(work: Path) -> None:
    if (work / "folds" / "demo.json").is_file() and (work / "data/demo/tiny-bert").is_dir():
        return
    for args in (("demo-data",), ("make-folds",), ("backbone", "tiny", "data/demo/tiny-bert")):
        comp(work, *args, "--config", str(DEMO))


def search(work: Path, trials: int, pruner: str) -> dict:
    study = "demo_tiny" if pruner == "median" else "demo_tiny_unpruned"
    layers = ["--config", str(DEMO), "--config", str(TINY_STUDY)]
    sets = ["--set", "train.lr=1e-5", "--set", f"tune.trials={trials}", "--set",
            f"tune.study={study}", "--set", f"tune.pruner={pruner}"]  # fmt: skip
    seconds = comp(work, "tune", *layers, *sets)
    with open(work / "runs" / "tune" / study / "trials.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {
        "study": study,
        "wall_s": seconds,
        "trials": len(rows),
        "pruned": sum(r["state"] == "PRUNED" for r in rows),
        "failed": sum(r["state"] == "FAIL" for r in rows),
        "best": max(float(r["value"]) for r in rows if r["state"] == "COMPLETE"),
        "args": layers + sets,
    }


def tfidf_overhead(work: Path) -> dict:
    layers = ["--config", str(DEMO), "--config", str(TFIDF_STUDY)]
    comp(work, "tune", *layers)
    folder = work / "runs" / "tune" / "demo_tfidf"
    with open(folder / "trials.csv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["state"] == "COMPLETE"]
    overheads = []
    for row in rows:
        experiment = trial_experiment("demo_tfidf", int(row["number"]))
        folds = sorted(p.parent.name for p in (work / "runs" / experiment).glob(f"fold*/{METRICS}"))
        walls = [json.loads((work / "runs" / experiment / f / METRICS).read_text())["wall_s"]
                 for f in folds]  # fmt: skip
        overheads.append(float(row["wall_s"]) - sum(walls))
    return {"trials": len(rows), "mean_s": sum(overheads) / len(overheads), "max_s": max(overheads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="comp-tune-"))
    work.mkdir(parents=True, exist_ok=True)
    if (work / "runs").exists():
        raise SystemExit(f"{work / 'runs'} exists: a rerun would time skipped folds and trials; "
                         "remove it, or use another --work")  # fmt: skip
    prepare(work)
    default_s = comp(work, "train", "--config", str(DEMO), "--fold", "1,2,3,4")
    pruned = search(work, args.trials, "median")
    unpruned = search(work, args.trials, "none")
    comp(work, "tune", *pruned["args"], "--confirm", "1")
    with open(work / "runs" / "tune" / "demo_tiny" / "confirmed.csv", encoding="utf-8") as handle:
        confirmed = list(csv.DictReader(handle))
    base = next(float(r["unseen_mean"]) for r in confirmed if r["trial"] == "0")
    best = next(r for r in confirmed if r["trial"] != "0")
    default = sum(fold_scores(work, "demo_tiny", UNSEEN)) / len(UNSEEN)
    overhead = tfidf_overhead(work)
    results = {
        "default_folds_1_4": default,
        "default_train_s": default_s,
        "bad_start_folds_1_4": base,
        "best_trial": int(best["trial"]),
        "best_folds_1_4": float(best["unseen_mean"]),
        "pruned": pruned,
        "unpruned": unpruned,
        "tfidf_overhead": overhead,
    }
    (work / "tune_demo.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    show(results, work)


def show(r: dict, work: Path) -> None:
    p, u, o = r["pruned"], r["unpruned"], r["tfidf_overhead"]
    best, bad, default = r["best_folds_1_4"], r["bad_start_folds_1_4"], r["default_folds_1_4"]
    rows = [
        ("folds 1-4, hand-set demo default", f"{default:.4f}"),
        ("folds 1-4, the bad start (train.lr=1e-5, trial 0)", f"{bad:.4f}"),
        (f"folds 1-4, best trial ({r['best_trial']}) of the pruned search", f"{best:.4f}"),
        ("best - bad start [>= +0.15]", f"{best - bad:+.4f}"),
        ("best - hand-set default [>= -0.02]", f"{best - default:+.4f}"),
        ("pruned search: wall, trials pruned", f"{p['wall_s']:.0f} s, {p['pruned']}/{p['trials']}"),
        ("unpruned search: wall", f"{u['wall_s']:.0f} s"),
        ("pruned / unpruned wall [<= 70 %]", f"{p['wall_s'] / u['wall_s']:.0%}"),
        ("TF-IDF trial overhead, mean / max [<= 1 s]", f"{o['mean_s']:.2f} / {o['max_s']:.2f} s"),
    ]
    table = Table(title=f"comp tune on the demo ({work})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
