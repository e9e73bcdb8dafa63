"""Issue 13's measurements on the demo competition: what task-adaptive pretraining, kNN fusion
and ensembling with TF-IDF do to the OOF and tail-class macro-F1, raw and logit-adjusted, with
the same folds for every row, and what they cost.

Rows: the tiny transformer from random weights and after `comp pretrain`
(configs/demo_tapt.yaml), each with LDAM/DRW and with plain CE; kNN fusion on the LDAM/DRW runs
(pooled as the head pools, and [CLS]); TF-IDF; and ensembles of TF-IDF with the transformers and
their kNN experiments (calibrated, with equal weights and, as opt_*, with weights fitted on OOF
macro-F1, cross-fitted). The table is `comp runs`'s (comp.leaderboard), so its figures are those
a user sees.

    python benchmarks/score_evidence.py [--scale 0.1] [--steps 300] [--work DIR]

Finished folds and a finished pretraining are skipped, so a rerun with the same --work only
recomputes the ensembles and the table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console

from comp.ensemble import run_ensemble
from comp.kinds import load_config
from comp.leaderboard import leaderboard, print_leaderboard, sort_rows, write_csv
from comp.neural.files import PRETRAIN_METRICS
from comp.pretrain.run import pretrain
from comp.runs.frame import train_folds
from comp.workspace import prepare_demo

ROOT = Path(__file__).resolve().parents[1]
QUIET = Console(quiet=True)


def paths(work: Path, scale: float, steps: int) -> list[str]:
    """--set overrides that move configs/demo.yaml (test sets included) under `work`."""
    demo = work / "demo"
    tests = ", ".join(
        f"{{name: {name}, path: {demo}/shared_task_test_{name}.csv}}"
        for name in ("public", "private")
    )
    return [
        f"demo.out_dir={demo}",
        f"demo.scale={scale}",
        f"data.train={demo}/shared_task_train.csv",
        f"data.test_sets=[{tests}]",
        f"data.solution={demo}/solution.csv",
        f"folds.dir={work}/folds",
        f"train.runs_dir={work}/runs",
        f"train.steps={steps}",
        f"model.backbone={work}/tiny-bert",
        f"pretrain.backbone={work}/tiny-bert",
        f"pretrain.out_dir={work}/tiny-bert-tapt",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="comp-score-"))
    base = paths(work, args.scale, args.steps)
    layers = [ROOT / "configs" / "demo.yaml", ROOT / "configs" / "demo_tapt.yaml"]
    console = Console()
    started, costs = time.perf_counter(), {}

    def config(*overrides: str):
        return load_config(layers, [*base, *overrides])

    plain = config("model.backbone=" + str(work / "tiny-bert"))
    if not (work / "tiny-bert" / "config.json").is_file():
        prepare_demo(plain, work / "tiny-bert", max_len=plain.model.max_len, seed=plain.train.seed)
    tick = time.perf_counter()
    pretrain(config(f"model.backbone={work}/tiny-bert-tapt"), "cpu", False, QUIET)
    costs["pretraining s"] = time.perf_counter() - tick
    pretrained = json.loads((work / "tiny-bert-tapt" / PRETRAIN_METRICS).read_text())
    costs["pretraining loop s"] = pretrained.get("train_s")

    def train(name: str, backbone: str, *overrides: str) -> None:
        cfg = config(f"model.backbone={work}/{backbone}", f"train.experiment={name}", *overrides)
        tick = time.perf_counter()
        train_folds(cfg, list(range(cfg.folds.k)), "cpu", False, QUIET)
        console.print(f"{name}: {time.perf_counter() - tick:.0f} s")

    knn = ("knn.enabled=true",)
    train("random_ldam", "tiny-bert", *knn)
    train("random_ce", "tiny-bert", "train.loss=ce")
    train("tapt_ldam", "tiny-bert-tapt", *knn)
    train("tapt_ce", "tiny-bert-tapt", "train.loss=ce")
    for base_experiment, backbone in (
        ("random_ldam", "tiny-bert"),
        ("tapt_ldam", "tiny-bert-tapt"),
    ):
        # the derived <experiment>_knn reads what the head reads (mean pooling on the demo)
        train(f"{base_experiment}_knn_cls", backbone, "model.kind=knn",
              f"knn.base_experiment={base_experiment}", "knn.pooling=cls")  # fmt: skip
    for c in ("0.5", "4"):
        train(f"tfidf_c{c}", "tiny-bert", "model.kind=tfidf", f"tfidf.c={c}")

    mixes = {
        "mix_tfidf_tapt": ["tfidf_c4", "tapt_ldam"],
        "mix_tfidf_tapt_knn": ["tfidf_c4", "tapt_ldam", "tapt_ldam_knn"],
        "mix_tfidf_random_knn": ["tfidf_c4", "random_ldam", "random_ldam_knn"],
        "mix_all": ["tfidf_c4", "random_ldam", "random_ldam_knn", "tapt_ldam", "tapt_ldam_knn"],
    }
    for name, experiments in mixes.items():
        run_ensemble(config(f"ensemble.name={name}"), experiments)
        # the same with weights fitted on OOF macro-F1, cross-fitted (fold f: the other folds')
        run_ensemble(config(f"ensemble.name=opt_{name}"), experiments, optimize=True)

    table_config = config()
    rows = sort_rows(leaderboard(table_config), "adjusted")
    print_leaderboard(rows, Console(width=200), None)
    write_csv(rows, work / "score_evidence.csv")
    knn_s = {}
    for name in ("random_ldam_knn", "tapt_ldam_knn"):
        folds = sorted((work / "runs" / name).glob("fold*/metrics.json"))
        knn_s[name] = sum(json.loads(f.read_text())["wall_s"] for f in folds)
    costs |= {f"{k} s (5 folds)": v for k, v in knn_s.items()}
    costs["total s"] = time.perf_counter() - started
    costs["load average"] = os.getloadavg()
    console.print(json.dumps(costs, indent=1, default=str))
    console.print(f"work folder {work}; table in {work / 'score_evidence.csv'}")


if __name__ == "__main__":
    main()
