"""A worker of `comp tune`: the study prepared once (its folder, config and space checked, the
base config enqueued as trial 0), then trials asked for and run one after another until the
study has `tune.trials` ended ones."""

from __future__ import annotations

import time
from contextlib import ExitStack

from rich.console import Console

from comp.config import Config, dump_config
from comp.layout import CACHE, CONFIG, tune_dir
from comp.tune.space import base_params, parse_space
from comp.tune.study import (
    ENDED,
    check_same_study,
    mark_host,
    open_study,
    reap_dead_trials,
    sampler,
    states,
    study_lock,
    trial_lock,
)
from comp.tune.trial import TunePlan, keep_best_weights, run_trial

WAIT_S = 5.0  # how often a worker with nothing to start looks at the study again


def prepare_study(config: Config, console: Console) -> TunePlan:
    """The study's folder and config (written by the first command; a later one must bring the
    same), its space checked, and the study created with the base config as trial 0."""
    from comp.io import write_text_atomically
    from comp.kinds import load_config

    folder = tune_dir(config)
    path = folder / CONFIG
    saved = load_config([path]) if path.is_file() else None
    if saved is not None:
        check_same_study(config, saved)
    if saved is None or saved.tune.trials != config.tune.trials:
        write_text_atomically(path, dump_config(config))
    dimensions = parse_space(config, path)
    params = base_params(config, dimensions)
    outside = [d.key for d in dimensions if not d.holds(params[d.key])]
    if outside:
        console.print(f"note: the base config's {', '.join(outside)} lies outside the space; "
                      "trial 0 tries it anyway")  # fmt: skip
    open_study(config, params)
    return TunePlan(config, path, dimensions)


def _next_trial(study, config: Config, held: ExitStack):
    """A new trial (its lock held in `held`), None to wait for others' running trials, or
    "done" once the study has `tune.trials` ended trials. One process at a time."""
    with study_lock(config):
        reap_dead_trials(study, config)
        counts = states(study)
        ended = sum(counts[state] for state in ENDED)
        if ended >= config.tune.trials:
            return "done"
        if ended + counts["RUNNING"] >= config.tune.trials:
            return None
        trial = study.ask()
        held.enter_context(trial_lock(config, trial.number))  # before anyone can reap it
        mark_host(trial)
        study.sampler = sampler(config, trial.number)
        return trial


def work(plan: TunePlan, device: str | None, console: Console) -> int:
    """Run trials of the study until it has `tune.trials` ended ones; returns how many this
    worker ran."""
    from comp.runs.frame import fold_fingerprint, load_run_inputs

    config, ran = plan.config, 0
    study = open_study(config)
    while True:
        with ExitStack() as held:
            trial = _next_trial(study, config, held)
            if trial == "done":
                return ran
            if trial is None:
                time.sleep(WAIT_S)
                continue
            if plan.loaded is None:  # the data, once for every trial of this worker
                loaded = load_run_inputs(config, fold_fingerprint(config), tune_dir(config) / CACHE)
                plan = TunePlan(plan.config, plan.config_path, plan.dimensions, loaded)
            started = time.perf_counter()
            state = run_trial(plan, study, trial, device, console)
            ran += 1
            console.print(
                f"[bold]trial {trial.number}[/]: {state} after "
                f"{time.perf_counter() - started:.1f} s"
            )
        with study_lock(config):
            keep_best_weights(study, config)


def worker_command(config: Config, device: str | None, console: Console) -> None:
    """One worker of `comp tune --workers N`, started with the study's own config file."""
    path = tune_dir(config) / CONFIG
    work(TunePlan(config, path, parse_space(config, path)), device, console)
