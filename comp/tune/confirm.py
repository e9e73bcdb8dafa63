"""`comp tune --confirm K`: the best K complete trials, and the base config (trial 0), trained on
every fold the search never saw, each into its own experiment (so `comp ensemble` takes them
whole), with their mean validation macro-F1 on those unseen folds side by side. The search's own
score (on the folds it tuned on) is never shown as if it were unseen."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from comp.config import Config
from comp.errors import CompError
from comp.io import write_text_atomically
from comp.kinds import load_config
from comp.layout import CONFIRMED_CSV, trial_config_path, trial_experiment, tune_dir
from comp.runs.frame import train_folds
from comp.tune.study import complete_best_first, existing_study


def chosen_trials(study, config: Config, best: int) -> list:
    """The best `best` complete trials, then trial 0 (the base) if it is not among them."""
    chosen = complete_best_first(study, config)[:best]
    base = [t for t in study.get_trials(deepcopy=False) if t.number == 0]
    if base and all(t.number != 0 for t in chosen):
        chosen.append(base[0])
    return chosen


def confirm_command(config: Config, best: int, device: str | None, console: Console) -> list:
    if best < 1:
        raise CompError(f"--confirm {best}: at least 1")
    unseen = [f for f in range(config.folds.k) if f not in config.tune.folds]
    if not unseen:
        raise CompError("tune.folds holds every fold: no fold is left unseen to confirm on")
    study = existing_study(config)
    rows = []
    for trial in chosen_trials(study, config, best):
        experiment = trial_experiment(config.tune.study, trial.number)
        saved = trial_config_path(config, trial.number)
        if not saved.is_file():
            console.print(f"trial {trial.number}: never started a fold; left out")
            continue
        console.print(f"[bold]trial {trial.number}[/] ({experiment}) on unseen folds {unseen}")
        results = train_folds(load_config([saved]), unseen, device, False, console)
        scores = [r.macro_f1 for r in results]
        rows.append((trial, sum(scores) / len(scores)))
    print_confirmation(rows, config, unseen, console)
    return rows


def print_confirmation(rows: list, config: Config, unseen: list[int], console: Console) -> None:
    base = next((score for trial, score in rows if trial.number == 0), None)
    searched = ",".join(map(str, config.tune.folds))
    table = Table(title=f"study {config.tune.study}: confirmed on unseen folds {unseen}")
    for column in ("trial", "state", f"search (folds {searched})", "unseen folds", "vs base"):
        table.add_column(column, justify="left" if column == "state" else "right")
    lines = ["trial,state,search_value,unseen_mean,vs_base"]
    for trial, score in rows:
        search = "" if trial.value is None else f"{trial.value:.4f}"
        versus = "" if base is None or trial.number == 0 else f"{score - base:+.4f}"
        name = f"{trial.number} (base)" if trial.number == 0 else str(trial.number)
        table.add_row(name, trial.state.name, search, f"{score:.4f}", versus)
        lines.append(f"{trial.number},{trial.state.name},{search},{score:.6f},{versus}")
    console.print(table)
    path = tune_dir(config) / CONFIRMED_CSV
    write_text_atomically(path, "\n".join(lines) + "\n")
    console.print(f"wrote {path}")
