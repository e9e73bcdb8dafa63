"""PNG figures of an ensemble, for people who would rather look than read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

import comp.layout as layout
from comp.config import Config
from comp.errors import CompError
from comp.io import read_json, read_parquet, save_figure
from comp.layout import LEARNING_CURVES, METRICS, OOF, PER_CLASS, fold_dir, retrain_command


def plot_f1_vs_count(per_class: pl.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(9, 5.5))
    counts = np.maximum(per_class["train_rows"].to_numpy(), 1)
    f1 = per_class["f1"].to_numpy()
    # classes share counts (the demo caps many at the same size): spread them a little
    jitter = np.exp(np.random.default_rng(0).uniform(-0.06, 0.06, len(counts)))
    ax.scatter(counts * jitter, f1, s=22, alpha=0.7)
    ax.set_xscale("log")
    ticks = [
        t
        for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
        if counts.min() / 2 <= t <= counts.max() * 2
    ]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training rows of the class (log scale)")
    ax.set_ylabel("OOF F1")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("Per-class F1 against training count (the 5 worst named)")
    names = per_class["category"].to_list()
    for i in range(min(5, len(names))):  # per_class is sorted worst first
        ax.annotate(
            names[i],
            (counts[i] * jitter[i], f1[i]),
            fontsize=7,
            xytext=(8, 12 + 11 * i),
            textcoords="offset points",
            arrowprops={"arrowstyle": "-", "lw": 0.5, "alpha": 0.5},
        )
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_confusion(oof: pl.DataFrame, names: list[str], path: Path, top: int = 12) -> None:
    """Row-normalised confusion among the classes with the most confused rows."""
    import matplotlib.pyplot as plt

    y = oof["label"].to_numpy()
    logits_column = "logits_adjusted" if "logits_adjusted" in oof.columns else "logits"
    pred = oof[logits_column].to_numpy().argmax(1)
    c = len(names)
    matrix = np.bincount(y * c + pred, minlength=c * c).reshape(c, c)
    off = matrix - np.diag(np.diag(matrix))
    involvement = off.sum(0) + off.sum(1)
    chosen = np.sort(np.argsort(-involvement, kind="stable")[:top])
    sub = matrix[np.ix_(chosen, chosen)].astype(float)
    sub = sub / np.maximum(matrix[chosen].sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8.5, 7.5))
    image = ax.imshow(sub, cmap="Blues", vmin=0, vmax=max(sub.max(), 1e-9))
    labels = [names[i] for i in chosen]
    ax.set_xticks(range(len(chosen)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(chosen)), labels, fontsize=8)
    for i in range(len(chosen)):
        for j in range(len(chosen)):
            if sub[i, j] >= 0.05:
                ax.text(
                    j,
                    i,
                    f"{sub[i, j]:.0%}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if sub[i, j] > 0.5 * sub.max() else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (share of the true class's OOF rows)")
    ax.set_title(f"Confusion among the {len(chosen)} most confused classes")
    fig.colorbar(image, ax=ax, fraction=0.04)
    save_figure(fig, path)


def plot_fold_scores(metrics: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    raw = metrics["oof_macro_f1_per_fold"]
    adjusted = metrics["oof_macro_f1_adjusted_per_fold"]
    x = np.arange(len(raw))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.bar(x - 0.2, raw, 0.4, label=f"raw (all folds {metrics['oof_macro_f1']:.3f})")
    ax.bar(
        x + 0.2,
        adjusted,
        0.4,
        label=f"logit-adjusted, cross-fitted ({metrics['oof_macro_f1_adjusted_crossfit']:.3f})",
    )
    ax.set_xticks(x, [f"fold {f}" for f in x])
    ax.set_ylabel("OOF macro-F1")
    ax.set_ylim(0, max(max(raw), max(adjusted)) * 1.25)
    ax.set_title("OOF macro-F1 per fold")
    ax.legend(loc="upper left", fontsize=8)
    for xi, value in zip(x - 0.2, raw, strict=True):
        ax.text(xi, value, f"{value:.3f}", ha="center", va="bottom", fontsize=7)
    for xi, value in zip(x + 0.2, adjusted, strict=True):
        ax.text(xi, value, f"{value:.3f}", ha="center", va="bottom", fontsize=7)
    save_figure(fig, path)


def curves(history: dict | list) -> tuple[list, list]:
    """(step, training loss) and (step, validation macro-F1) points of a fold's metrics.json
    history; a history written before the event stream holds the loss at each evaluation."""
    if isinstance(history, list):
        return [(h["step"], h["loss"]) for h in history], [
            (h["step"], h["val_macro_f1"]) for h in history
        ]
    losses = [(h["step"], h["loss"]) for h in history.get("loss", [])]
    return losses, [(h["step"], h["val_macro_f1"]) for h in history.get("val", [])]


def fold_histories(config: Config, experiments: list[str]) -> dict[str, dict[int, tuple]]:
    """Each experiment's folds' curves, for the experiments that train in steps."""
    found: dict[str, dict[int, tuple]] = {}
    for experiment in experiments:
        for fold in range(config.folds.k):
            folder = fold_dir(config, fold, experiment)
            metrics = read_json(folder / METRICS, retrain_command(folder))
            losses, val = curves(metrics.get("history") or {})
            if losses or val:
                found.setdefault(experiment, {})[fold] = (losses, val)
    return found


def plot_learning_curves(histories: dict[str, dict[int, tuple]], path: Path) -> None:
    """Per experiment, training loss and validation macro-F1 against step, a line per fold."""
    import matplotlib.pyplot as plt

    rows = len(histories)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.4 * rows), squeeze=False)
    for (experiment, folds), (loss_ax, val_ax) in zip(histories.items(), axes, strict=True):
        for fold, (losses, val) in sorted(folds.items()):
            if losses:
                loss_ax.plot(*zip(*losses, strict=True), lw=1, label=f"fold {fold}")
            if val:
                val_ax.plot(*zip(*val, strict=True), marker="o", ms=3, lw=1, label=f"fold {fold}")
        loss_ax.set_title(f"{experiment}: training loss", fontsize=10)
        val_ax.set_title(f"{experiment}: validation macro-F1", fontsize=10)
        for ax in (loss_ax, val_ax):
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def _read_per_class(path: Path) -> pl.DataFrame:
    try:
        return pl.read_csv(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise CompError(f"{path}: unreadable ({reason}); run `comp ensemble`") from None


def write_report(config: Config, label_names: list[str]) -> list[Path]:
    """The report's PNGs in the ensemble's folder (`ensemble.name`); learning_curves.png only
    when one of its experiments trains in steps."""
    import matplotlib

    matplotlib.use("Agg")
    ensemble_dir = layout.ensemble_dir(config)
    metrics = read_json(ensemble_dir / METRICS, "comp ensemble")
    per_class = _read_per_class(ensemble_dir / PER_CLASS)
    oof = read_parquet(ensemble_dir / OOF, "comp ensemble")
    if not metrics["apply_adjustment"]:
        oof = oof.drop("logits_adjusted")
    paths = [
        ensemble_dir / name
        for name in ("per_class_f1_vs_count.png", "confusion_top.png", "fold_scores.png")
    ]
    plot_f1_vs_count(per_class, paths[0])
    plot_confusion(oof, label_names, paths[1])
    plot_fold_scores(metrics, paths[2])
    histories = fold_histories(config, [str(e) for e in metrics["experiments"]])
    if histories:
        paths.append(ensemble_dir / LEARNING_CURVES)
        plot_learning_curves(histories, paths[-1])
    return paths
