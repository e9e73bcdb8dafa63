"""What helps on the demo competition: TF-IDF, the tiny transformer with CE, with LDAM/DRW, with
automatically found margin boosting, and the TF-IDF + transformer ensemble, each scored on OOF
macro-F1 and tail-class macro-F1, with and without the cross-fitted logit adjustment.

Every row uses the same demo data (one scale) and the same folds. Tail classes are those with
fewer than 50 training rows in the full-size competition (16 of 82), whatever the scale.

    python benchmarks/demo_evidence.py [--scale 0.1] [--steps 300] [--tfidf-c 4] [--work DIR]
    python benchmarks/demo_evidence.py --scale 1 --tfidf-only --tfidf-c 0.5   # TF-IDF rows only

Finished folds are skipped, so a rerun with the same --work only recomputes the ensembles.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from comp.confusions import confusions_command
from comp.demo.categories import CATEGORIES
from comp.ensemble import run_ensemble
from comp.kinds import load_config
from comp.metrics import per_class_f1
from comp.runs.frame import train_folds
from comp.workspace import prepare_demo, workspace_overrides

ROOT = Path(__file__).resolve().parents[1]
QUIET = Console(quiet=True)
TAIL = np.array([c.train_rows < 50 for c in CATEGORIES])


def scores(ensemble_dir: Path) -> dict:
    oof = pl.read_parquet(ensemble_dir / "oof.parquet")
    y = oof["label"].to_numpy()
    out = {}
    for column in ("logits", "logits_adjusted"):
        pred = oof[column].to_numpy().argmax(1)
        f1 = per_class_f1(y, pred, len(CATEGORIES))
        out[column] = (float(f1.mean()), float(f1[TAIL].mean()))
    return out


def transformer_rows(work: Path, base: list[str], tfidf_c: float, run, ensemble, console):
    """Train the three tiny-transformer variants (skipping finished folds) and score them and
    their ensembles with TF-IDF (tfidf.c = tfidf_c)."""
    run("tiny_ce", "train.loss=ce")
    run("tiny_ldam")
    fragment = work / "boost.yaml"
    if not fragment.is_file():  # kept on a rerun, so the boosted run's config stays the same
        cfg = load_config([ROOT / "configs" / "demo.yaml"], [*base, "ensemble.name=tiny_ldam"])
        run_ensemble(cfg, ["tiny_ldam"])
        groups = confusions_command(cfg, "tiny_ldam", 0.1, 5, fragment, QUIET)
        console.print(f"automatic boosting: {len(groups)} groups from tiny_ldam's OOF")
    run("tiny_ldam_boost", layers=(fragment,))
    tfidf, raw = f"tfidf_c{tfidf_c:g}", "ensemble.calibrate=false"
    return {
        "tiny transformer, CE": ensemble("e_ce", ["tiny_ce"]),
        "tiny transformer, LDAM/DRW": ensemble("e_ldam", ["tiny_ldam"]),
        "tiny transformer, LDAM/DRW + auto boost": ensemble("e_boost", ["tiny_ldam_boost"]),
        "TF-IDF + LDAM/DRW, raw logits averaged": ensemble("e_mix_raw", [tfidf, "tiny_ldam"], raw),
        "TF-IDF + LDAM/DRW, calibrated (the default)": ensemble("e_mix", [tfidf, "tiny_ldam"]),
        "same, weights fitted on OOF (cross-fitted)": ensemble(
            "e_mix_opt", [tfidf, "tiny_ldam"], optimize=True
        ),
        "TF-IDF + LDAM/DRW + boost, calibrated": ensemble(
            "e_mix_boost", [tfidf, "tiny_ldam_boost"]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--tfidf-c", type=float, action="append", help="tfidf.c values to try (default: 4)"
    )
    parser.add_argument("--tfidf-only", action="store_true", help="only the TF-IDF rows")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="comp-evidence-"))
    base = [*workspace_overrides(work), f"demo.scale={args.scale}", f"train.steps={args.steps}"]
    config = load_config([ROOT / "configs" / "demo.yaml"], base)
    started = time.perf_counter()
    backbone = work / "tiny"  # kept on a rerun: its WordPiece training is not deterministic
    train = prepare_demo(config, None if (backbone / "config.json").is_file() else backbone)
    console = Console()
    console.print(f"{len(train):,} train rows (scale {args.scale}), work folder {work}")

    def run(name: str, *overrides: str, layers: tuple = ()) -> None:
        cfg = load_config(
            [ROOT / "configs" / "demo.yaml", *layers],
            [*base, f"train.experiment={name}", *overrides],
        )
        tick = time.perf_counter()
        train_folds(cfg, list(range(cfg.folds.k)), "cpu", False, QUIET)
        console.print(f"{name}: trained in {time.perf_counter() - tick:.0f} s")

    def ensemble(name: str, experiments: list[str], *overrides: str, optimize=False) -> dict:
        cfg = load_config(
            [ROOT / "configs" / "demo.yaml"], [*base, f"ensemble.name={name}", *overrides]
        )
        return scores(run_ensemble(cfg, experiments, optimize).out_dir)

    tfidf_cs = args.tfidf_c or [4.0]
    for c in tfidf_cs:
        run(f"tfidf_c{c:g}", "model.kind=tfidf", f"tfidf.c={c}")
    rows = {f"TF-IDF, c {c:g}": ensemble(f"e_tfidf_c{c:g}", [f"tfidf_c{c:g}"]) for c in tfidf_cs}
    if not args.tfidf_only:
        rows |= transformer_rows(work, base, tfidf_cs[0], run, ensemble, console)
    table = Table(
        title=f"demo competition, scale {args.scale} ({len(train):,} rows), 5 folds"
        + ("" if args.tfidf_only else f", {args.steps} steps")
    )
    for column in ("model", "OOF macro-F1", "tail macro-F1", "adjusted OOF", "adjusted tail"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, s in rows.items():
        (raw, raw_tail), (adj, adj_tail) = s["logits"], s["logits_adjusted"]
        table.add_row(name, f"{raw:.4f}", f"{raw_tail:.4f}", f"{adj:.4f}", f"{adj_tail:.4f}")
    console.print(table)
    console.print(f"total {time.perf_counter() - started:.0f} s")
    (work / "evidence.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
