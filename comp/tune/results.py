"""What a study found: the trials best first (a table, trials.csv), the objective against the trial
(history.png), the parameters' importances (importances.png), and the best trial's settings as a
config layer of its own (best.yaml: experiment and ensemble `<study>_best`, so training it on all
folds never retrains the base experiment in place)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import yaml
from rich.console import Console

from comp.config import Config, dump_config, short_keys
from comp.io import save_figure, write_text_atomically
from comp.kinds import load_config
from comp.layout import (
    BEST_CONFIG,
    TRIALS_CSV,
    TUNE_HISTORY,
    TUNE_IMPORTANCES,
    trial_config_path,
    tune_dir,
)
from comp.progress import fitted_table
from comp.tune.study import trial_note

STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "WAITING": 4}


def trial_rows(study, config: Config) -> list[dict]:
    """A row per trial: number, state, value, each parameter, wall_s, note; the
    complete trials best first, then the pruned, failed and running ones by number."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        wall = None
        if t.datetime_start and t.datetime_complete:
            wall = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                **{key: t.params.get(key) for key in config.tune.space},
                "wall_s": wall,
                "note": trial_note(config, t.number),
            }
        )
    sign = -1 if config.tune.direction == "maximize" else 1

    def order(row: dict) -> tuple:
        value = row["value"] if row["value"] is not None else math.inf
        return (STATE_ORDER.get(row["state"], 5), sign * value if row["state"] == "COMPLETE"
                else row["number"])  # fmt: skip

    return sorted(rows, key=order)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4f}"
    return str(value)


def print_trials(rows: list[dict], config: Config, console: Console) -> None:
    keys = list(config.tune.space)
    headers = ["trial", "state", "value", *short_keys(keys).values(), "wall s", "note"]
    cells = [
        [
            str(row["number"]),
            row["state"],
            _cell(row["value"]) if row["state"] == "COMPLETE" else "",
            *(_cell(row[key]) for key in keys),
            "" if row["wall_s"] is None else f"{row['wall_s']:.1f}",
            row["note"],
        ]
        for row in rows
    ]
    title = f"study {config.tune.study}: {len(rows)} trials, best first"
    console.print(fitted_table(title, headers, cells, {"state", "note"}, console.width))


def write_trials_csv(rows: list[dict], config: Config, path: Path) -> None:
    """number, state (as Optuna names it), value, a column per parameter, wall_s, and the note
    saying why a trial was pruned or failed."""
    import polars as pl

    columns = ["number", "state", "value", *config.tune.space, "wall_s", "note"]
    frame = pl.DataFrame({c: pl.Series(c, [r[c] for r in rows], strict=False) for c in columns})
    write_text_atomically(path, frame.write_csv())


def plot_history(rows: list[dict], config: Config, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["number"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if done:
        numbers, values = [r["number"] for r in done], [r["value"] for r in done]
        better = max if config.tune.direction == "maximize" else min
        best = [better(values[: i + 1]) for i in range(len(values))]
        ax.scatter(numbers, values, s=24, label="complete trial")
        ax.step(numbers, best, where="post", color="C1", label="best so far")
    others = [r for r in rows if r["state"] in ("PRUNED", "FAIL")]
    for state, marker in (("PRUNED", "x"), ("FAIL", "v")):
        numbers = [r["number"] for r in others if r["state"] == state]
        if numbers:
            low = ax.get_ylim()[0] if done else 0.0
            ax.scatter(numbers, [low] * len(numbers), marker=marker, color="grey",
                       label=state.lower())  # fmt: skip
    ax.set_xlabel("trial")
    ax.set_ylabel("mean validation macro-F1 of the searched folds")
    ax.set_title(f"study {config.tune.study}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=110)


def plot_importances(study, path: Path) -> str | None:
    """importances.png, or why it cannot be drawn yet (fewer than two complete trials)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    try:
        with warnings.catch_warnings():  # "too few trials": said below instead
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as error:
        return str(error).splitlines()[0]
    if not importances:
        return "no parameter varied between the complete trials"
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (fANOVA, share of the objective's variance)")
    ax.set_title("parameter importances")
    save_figure(fig, path, dpi=110)
    return None


def best_config(config: Config, number: int) -> Config:
    """Trial `number`'s resolved config, renamed experiment and ensemble `<study>_best`."""
    saved = load_config([trial_config_path(config, number)])
    saved.train.experiment = saved.ensemble.name = f"{config.tune.study}_best"
    return saved


def write_results(study, config: Config, console: Console) -> list[dict]:
    """Print the trials and write trials.csv, history.png, importances.png and best.yaml."""
    folder = tune_dir(config)
    rows = trial_rows(study, config)
    print_trials(rows, config, console)
    write_trials_csv(rows, config, folder / TRIALS_CSV)
    plot_history(rows, config, folder / TUNE_HISTORY)
    why_not = plot_importances(study, folder / TUNE_IMPORTANCES)
    if why_not:
        console.print(f"no {TUNE_IMPORTANCES} yet: {why_not}")
    if rows and rows[0]["state"] == "COMPLETE":  # the best trial: rows are best first
        best = best_config(config, rows[0]["number"])
        params = {k: v for k, v in rows[0].items() if k in config.tune.space}
        header = (
            f"# The best trial of study {config.tune.study}: trial {rows[0]['number']}, mean "
            f"validation macro-F1 {rows[0]['value']:.4f} on folds {config.tune.folds}\n"
            f"# {yaml.safe_dump(params, default_flow_style=True, allow_unicode=True).strip()}\n"
            f"# Train it on every fold: comp train --config {folder / BEST_CONFIG}\n"
        )
        write_text_atomically(folder / BEST_CONFIG, header + dump_config(best))
        console.print(f"best trial {rows[0]['number']}: wrote {folder / BEST_CONFIG}")
    console.print(
        f"wrote {folder / TRIALS_CSV}, {TUNE_HISTORY}"
        + ("" if why_not else f", {TUNE_IMPORTANCES}")
    )
    return rows
