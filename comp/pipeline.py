"""What the Makefile needs to know about a config, and the summary `make all` ends with."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from comp.config import Config
from comp.ensemble import ensemble_dir
from comp.folds import folds_paths


def is_demo(config: Config) -> bool:
    """The config's competition is the built-in demo (so `make` may generate its files)."""
    return Path(config.data.train).parent == Path(config.demo.out_dir)


def builds_tiny_backbone(config: Config) -> bool:
    """The backbone is a local folder inside the demo folder: `make` builds it."""
    inside = Path(config.demo.out_dir) in Path(config.model.backbone).parents
    return config.model.kind == "transformer" and is_demo(config) and inside


def submission_path(config: Config, test_set: str) -> Path:
    name = config.submit.name or config.ensemble.name
    return Path(config.submit.dir) / f"{name}_{test_set}.csv"


def make_variables(config: Config) -> dict[str, str]:
    run_dir = Path(config.train.runs_dir) / config.train.experiment
    return {
        "TRAIN_FILE": config.data.train,
        "TEST_FILES": " ".join(t.path for t in config.data.test_sets),
        "IS_DEMO": "1" if is_demo(config) else "",
        "TINY_BACKBONE": config.model.backbone if builds_tiny_backbone(config) else "",
        "FOLDS_JSON": str(folds_paths(config)[1]),
        "FOLD_IDS": " ".join(str(k) for k in range(config.folds.k)),
        "RUN_DIR": str(run_dir),
        "ENSEMBLE_DIR": str(ensemble_dir(config)),
        "SUBMISSION": str(submission_path(config, "combined")),
        "SOLUTION": config.data.solution or "",
    }


def print_summary(config: Config, console: Console) -> None:
    """OOF macro-F1, the submission's local scores when an answer key is configured, paths."""
    from comp.submit import print_scores, score_submission

    metrics = json.loads((ensemble_dir(config) / "metrics.json").read_text(encoding="utf-8"))
    adjusted = metrics["apply_adjustment"]
    console.print(
        f"OOF macro-F1: {metrics['oof_macro_f1']:.4f} raw, "
        f"{metrics['oof_macro_f1_adjusted_crossfit']:.4f} logit-adjusted (cross-fitted, "
        f"{'applied' if adjusted else 'not applied'})"
    )
    combined = submission_path(config, "combined")
    if config.data.solution and combined.is_file():
        scores = score_submission(
            combined, config.data.solution, config.data, config.data.num_labels
        )
        print_scores(scores, console)
        console.print(
            f"public {scores['public']['macro_f1']:.4f}, "
            f"private {scores['private']['macro_f1']:.4f} macro-F1 on the demo's "
            "answer key"
        )
    paths = [combined] + [submission_path(config, t.name) for t in config.data.test_sets]
    for path in paths:
        if path.is_file():
            console.print(f"submission: [bold]{path}[/]")


def training_texts(train) -> list[str]:
    """Question and answer of every train row, as one text (what a tokenizer is trained on)."""
    return [f"{q}\n{a}" for q, a in zip(train.questions, train.answers, strict=True)]


def workspace_overrides(work: Path, backbone: str = "tiny") -> list[str]:
    """--set overrides that put the demo competition (train file only), its folds, the backbone
    and the runs under `work`: a throw-away workspace for benchmarks."""
    return [
        f"demo.out_dir={work}/demo",
        f"data.train={work}/demo/shared_task_train.csv",
        "data.test_sets=[]",
        f"folds.dir={work}/folds",
        f"model.backbone={work}/{backbone}",
        f"train.runs_dir={work}/runs",
    ]


def prepare_demo(config: Config, backbone_dir: Path | None = None, **backbone_options):
    """The first steps of `make all` in one call: write the demo competition, make its folds and,
    if `backbone_dir` is given, build the tiny backbone there. Returns the loaded TrainData."""
    from comp.backbone import build_tiny_backbone
    from comp.data import load_train
    from comp.demo_writer import write_demo_files
    from comp.folds import make_folds

    write_demo_files(config, Console(quiet=True))
    train = load_train(config.data)
    make_folds(config, train)
    if backbone_dir is not None:
        build_tiny_backbone(training_texts(train), backbone_dir, **backbone_options)
    return train
