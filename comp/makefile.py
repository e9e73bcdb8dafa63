"""What the Makefile needs to know about a config, and the summary `make all` ends with."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from comp.config import Config
from comp.folds import folds_paths
from comp.io import read_json
from comp.kinds import get_kind
from comp.layout import COMBINED, METRICS, ensemble_dir, experiment_dir, submission_path


def is_demo(config: Config) -> bool:
    """The config's competition is the built-in demo (so `make` may generate its files)."""
    return Path(config.data.train).parent == Path(config.demo.out_dir)


def uses_backbone(config: Config) -> bool:
    """The configured kind reads model.backbone (so make builds or pretrains it first)."""
    return get_kind(config.model.kind).USES_BACKBONE


def pretrains(config: Config) -> bool:
    """The config asks `make` for `comp pretrain`: a kind that reads model.backbone, and
    model.backbone is pretrain.out_dir."""
    out = config.pretrain.out_dir
    return uses_backbone(config) and bool(out) and config.model.backbone == out


def tiny_backbone(config: Config) -> str:
    """The tiny backbone `make` builds, or "": the backbone that pretraining (or else training)
    starts from, when it is a folder inside the demo folder."""
    start = config.pretrain.backbone if pretrains(config) else config.model.backbone
    inside = Path(config.demo.out_dir) in Path(start).parents
    return start if uses_backbone(config) and is_demo(config) and inside else ""


def make_variables(config: Config) -> dict[str, str]:
    return {
        "TRAIN_FILE": config.data.train,
        "TEST_FILES": " ".join(t.path for t in config.data.test_sets),
        "IS_DEMO": "1" if is_demo(config) else "",
        "TINY_BACKBONE": tiny_backbone(config),
        "PRETRAINED_BACKBONE": config.pretrain.out_dir if pretrains(config) else "",
        "FOLDS_JSON": str(folds_paths(config)[1]),
        "FOLD_IDS": " ".join(str(k) for k in range(config.folds.k)),
        "RUN_DIR": str(experiment_dir(config)),
        "ENSEMBLE_DIR": str(ensemble_dir(config)),
        "SUBMISSION": str(submission_path(config, COMBINED)),
        "SOLUTION": config.data.solution or "",
    }


def print_summary(config: Config, console: Console) -> None:
    """OOF macro-F1, the submission's local scores when an answer key is configured, paths."""
    from comp.submit import print_scores, score_submission

    metrics = read_json(ensemble_dir(config) / METRICS, "comp ensemble")
    adjusted = metrics["apply_adjustment"]
    console.print(
        f"OOF macro-F1: {metrics['oof_macro_f1']:.4f} raw, "
        f"{metrics['oof_macro_f1_adjusted_crossfit']:.4f} logit-adjusted (cross-fitted, "
        f"{'applied' if adjusted else 'not applied'})"
    )
    combined = submission_path(config, COMBINED)
    if config.data.solution and combined.is_file():
        scores = score_submission(
            combined, config.data.solution, config.data, config.data.num_labels
        )
        print_scores(scores, console)
        key = (
            "the demo's answer key" if is_demo(config) else f"the answer key {config.data.solution}"
        )
        console.print(
            f"public {scores['public']['macro_f1']:.4f}, "
            f"private {scores['private']['macro_f1']:.4f} macro-F1 on {key}"
        )
    paths = [combined] + [submission_path(config, t.name) for t in config.data.test_sets]
    for path in paths:
        if path.is_file():
            console.print(f"submission: [bold]{path}[/]")
