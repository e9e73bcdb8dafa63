"""Duplicates on the full-size demo competition, and what grouped folds change.

Builds the full-size demo (27,950 train rows, 18,634 test rows, its planted duplicates) in a
temporary folder with `configs/tfidf.yaml` moved there, then measures, each command as a user
runs it (a subprocess), with the load average at that moment:

1. `comp audit`: wall time (target: 30 s) and precision / recall of the duplicate pairs against
   the planted ones (`planted_duplicates.csv`): both sides are turned into groups (connected
   components) and compared as the sets of row pairs inside a group;
2. `comp make-folds`, grouped (the default) and ungrouped: wall time, best of --repeat (target
   for grouped: 3 s), and whether any group of identical normalised texts spans two folds;
3. the TF-IDF kind on both fold sets (`comp train --fold all`, `comp ensemble`, `comp submit
   --combined`, `comp score`): OOF macro-F1 against the public and private scores on the demo's
   answer key, i.e. how much the duplicates inflate the out-of-fold estimate;
4. `comp audit` on the 100 real AHQAD pairs in ../shared (skipped when absent), with their Arabic
   categories mapped to label ids through the demo's category table.

    python benchmarks/audit_and_folds.py [--repeat 3] [--skip-training]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console

from comp.config import dump_config
from comp.data import load_train
from comp.duplicates import normalised_rows
from comp.kinds import load_config
from comp.submit import score_submission

ROOT = Path(__file__).resolve().parents[1]
COMP = [sys.executable, "-m", "comp.cli"]
SAMPLE = ROOT.parent / "shared" / "data" / "abjadmed" / "ahqad_sample100"
console = Console()


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def comp(*args: str, cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    env = {**os.environ, "COLUMNS": "250"}  # rich wraps nothing
    out = subprocess.run(
        [*COMP, *args], cwd=cwd, capture_output=True, text=True, check=False, env=env
    )
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"comp {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return seconds, out.stdout


def write_config(work: Path, name: str, overrides: list[str]) -> str:
    demo = work / "demo"
    moved = [
        f"demo.out_dir={demo}",
        f"data.train={demo / 'shared_task_train.csv'}",
        f"data.solution={demo / 'solution.csv'}",
        f"folds.dir={work / 'folds'}",
        f"train.runs_dir={work / 'runs'}",
        f"submit.dir={work / 'submissions'}",
    ]
    config = load_config([ROOT / "configs" / "tfidf.yaml"], [*moved, *overrides])
    for test_set in config.data.test_sets:
        test_set.path = str(demo / Path(test_set.path).name)
    path = work / f"{name}.yaml"
    path.write_text(dump_config(config), encoding="utf-8")
    return path.name


def pair_set(group: np.ndarray) -> set[tuple[int, int]]:
    members: dict[int, list[int]] = {}
    for row, g in enumerate(group.tolist()):
        members.setdefault(g, []).append(row)
    return {p for rows in members.values() for p in itertools.combinations(rows, 2)}


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    return connected_components(coo_matrix((np.ones(len(a)), (a, b)), (n, n)), directed=False)[1]


def audit_precision_recall(work: Path, audit_folder: Path) -> dict:
    """Pairs inside planted groups against pairs inside the audit's groups (train and test
    rows; a row's index is its position in train, then public, then private)."""
    demo = work / "demo"
    sizes = {
        "train": len(pl.read_csv(demo / "shared_task_train.csv", columns=["label"])),
        "test_public": len(pl.read_csv(demo / "shared_task_test_public.csv", columns=["Id"])),
        "test_private": len(pl.read_csv(demo / "shared_task_test_private.csv", columns=["Id"])),
    }
    offset = dict(zip(sizes, np.cumsum([0, *sizes.values()])[:-1].tolist(), strict=True))
    n = sum(sizes.values())
    planted = pl.read_csv(demo / "planted_duplicates.csv")
    copy = np.array([offset[f] + r for f, r in zip(planted["file"], planted["row"], strict=True)])
    truth = pair_set(components(n, copy, planted["source_row"].to_numpy()))
    groups = pl.read_csv(audit_folder / "groups.csv", infer_schema_length=0)
    set_offset = {"train": 0, "public": offset["test_public"], "private": offset["test_private"]}
    rows = zip(groups["set"], groups["row"], strict=True)
    index = np.array([set_offset[name] + int(row) for name, row in rows])
    found_group = np.arange(n)
    found_group[index] = n + groups["group"].cast(pl.Int64).to_numpy()
    found = pair_set(found_group)
    by_kind = {}
    for kind in ("exact", "variant", "near"):
        mine = (planted["kind"] == kind).to_numpy()
        hit = [
            found_group[c] == found_group[s]
            for c, s in zip(copy[mine], planted["source_row"].to_numpy()[mine], strict=True)
        ]
        by_kind[kind] = {"copies": int(mine.sum()), "found": int(np.sum(hit))}
    both = len(truth & found)
    return {
        "planted_pairs": len(truth),
        "found_pairs": len(found),
        "precision": both / max(len(found), 1),
        "recall": both / max(len(truth), 1),
        "copies_found_by_kind": by_kind,
    }


def identical_texts_span_folds(work: Path, config_name: str) -> int:
    config = load_config([work / config_name])
    train = load_train(config.data)
    fold = pl.read_csv(Path(config.folds.dir) / f"{config.folds.name}.csv")["fold"].to_numpy()
    texts = normalised_rows(train.questions, train.answers).pairs
    frame = pl.DataFrame({"text": texts, "fold": fold})
    return int((frame.group_by("text").agg(pl.col("fold").n_unique())["fold"] > 1).sum())


def train_and_score(work: Path, config_name: str) -> dict:
    seconds, _ = comp("train", "--fold", "all", "--config", config_name, cwd=work)
    comp("ensemble", "--config", config_name, cwd=work)
    comp("submit", "--combined", "--config", config_name, cwd=work)
    config = load_config([work / config_name])
    metrics = json.loads(
        (work / "runs" / "ensembles" / config.ensemble.name / "metrics.json").read_text()
    )
    submission = Path(config.submit.dir) / f"{config.ensemble.name}_combined.csv"
    _, printed = comp("score", str(submission), "--config", config_name, cwd=work)
    scores = score_submission(submission, config.data.solution, config.data, config.data.num_labels)
    return {
        "train_seconds": seconds,
        "oof_macro_f1": metrics["oof_macro_f1"],
        "oof_per_fold": metrics["oof_macro_f1_per_fold"],
        "public": scores["public"]["macro_f1"],
        "private": scores["private"]["macro_f1"],
        "comp_score_printed": printed.strip().splitlines(),
    }


def ahqad_audit(work: Path) -> dict | None:
    if not SAMPLE.is_dir():
        return None
    from comp.demo.categories import CATEGORIES

    label = {c.arabic: c.label for c in CATEGORIES}
    queries = [json.loads(line) for line in (SAMPLE / "queries.jsonl").open(encoding="utf-8")]
    answers = {
        d["id"]: d["text"]
        for d in map(json.loads, (SAMPLE / "corpus.jsonl").open(encoding="utf-8"))
    }
    layout = "السؤال\n----------\n{}\n\nالجواب\n----------\n{}"
    rows = [
        {
            "text": layout.format(q["text"], answers["doc" + q["id"][1:]]),
            "category": q["category"],
            "label": label[q["category"]],
        }
        for q in queries
    ]
    folder = work / "ahqad"
    folder.mkdir()
    pl.DataFrame(rows).write_csv(folder / "ahqad_sample100.csv")
    found = {}
    for threshold in (0.8, 0.6, 0.5):
        sets = [
            "--set",
            f"data.train={folder / 'ahqad_sample100.csv'}",
            "--set",
            "data.test_sets=[]",
        ]
        sets += [
            "--set",
            f"train.runs_dir={folder / 'runs'}",
            "--set",
            f"dedup.threshold={threshold}",
        ]
        seconds, _ = comp(
            "audit", "--config", str(ROOT / "configs" / "tfidf.yaml"), *sets, cwd=work
        )
        summary = json.loads(
            (folder / "runs" / "audit" / "ahqad_sample100" / "summary.json").read_text()
        )
        groups = pl.read_csv(folder / "runs" / "audit" / "ahqad_sample100" / "groups.csv")
        found[threshold] = {
            "seconds": seconds,
            "train": summary["files"][0],
            "groups": summary["groups"],
            "grouped_rows": groups["row"].to_list(),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="comp-dups-") as tmp:
        work = Path(tmp)
        grouped = write_config(work, "grouped", [])
        ungrouped = write_config(
            work,
            "ungrouped",
            [
                "folds.group_duplicates=false",
                "folds.name=demo-full-ungrouped",
                "train.experiment=tfidf_ungrouped",
                "ensemble.name=tfidf_ungrouped",
            ],
        )
        comp("demo-data", "--config", grouped, cwd=work)
        results["load_before_audit"] = load_average()
        results["audit_seconds"], _ = comp("audit", "--config", grouped, cwd=work)
        results["audit_load_after"] = load_average()
        audit_folder = work / "runs" / "audit" / "shared_task_train"
        results["audit_summary"] = json.loads((audit_folder / "summary.json").read_text())
        results["audit_vs_planted"] = audit_precision_recall(work, audit_folder)
        for name, config in (("grouped", grouped), ("ungrouped", ungrouped)):
            load = load_average()
            times = [
                comp("make-folds", "--config", config, cwd=work)[0] for _ in range(args.repeat)
            ]
            _, printed = comp("make-folds", "--config", config, cwd=work)
            results[f"make_folds_{name}"] = {
                "best_seconds": min(times),
                "all_seconds": times,
                "load_before": load,
                "load_after": load_average(),
                "identical_texts_spanning_folds": identical_texts_span_folds(work, config),
                "printed": [
                    line
                    for line in printed.splitlines()
                    if "duplicate" in line or "ungrouped" in line or "grouping" in line
                ],
            }
        if not args.skip_training:
            for name, config in (("grouped", grouped), ("ungrouped", ungrouped)):
                results[f"tfidf_{name}"] = {
                    "load_before": load_average(),
                    **train_and_score(work, config),
                }
        results["ahqad_sample100"] = ahqad_audit(work)
    console.print_json(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
