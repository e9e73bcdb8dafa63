"""`comp tune`: search a recipe's settings with Optuna over the fold frame.

A study (`tune.study`) lives in runs/tune/<study>/: the base config and search space it was
started with (config.yaml), its Optuna storage, and its results. A trial is an experiment
`<study>_t<NNN>` trained on `tune.folds` through the normal fold frame (`comp.tune.trial`); trial 0
is the base config itself. `tune.trials` counts the study's ended trials over every worker and
every command that shares it: a command returns once the study has that many.

- `comp tune` creates the study (once) and runs trials in this process, or in `--workers N`
  processes (`--gpus 0,1`: one GPU each); another machine joins by running `comp tune` with the
  same storage (a journal on a shared filesystem, or an RDB URL).
- `comp tune --show` prints and writes the results (`comp.tune.results`).
- `comp tune --confirm K` trains the best K trials (and the base) on every fold the search never
  saw and prints their mean there (`comp.tune.confirm`).
"""

from __future__ import annotations

from rich.console import Console

from comp.config import Config
from comp.errors import CompError
from comp.layout import LAUNCH, tune_dir
from comp.tune.run import TunePlan, prepare_study, work, worker_command
from comp.tune.study import existing_study, open_study

__all__ = ["prepare_study", "show_command", "tune_command", "work", "worker_command"]


def tune_command(
    config: Config,
    workers: int,
    gpus: list[str],
    device: str | None,
    detach: bool,
    console: Console,
) -> None:
    """`comp tune`: prepare the study, run it here, in worker processes or in Slurm tasks, and
    show the results."""
    from comp.tune.results import write_results

    if workers < 1:
        raise CompError(f"--workers {workers}: at least 1")
    plan = prepare_study(config, console)
    if config.launch.executor == "slurm":
        workers_on_slurm(plan, workers, device, detach, console)
        if detach:
            return
    elif workers == 1 and not gpus:
        work(plan, device, console)
    else:
        from comp.tune.workers import run_workers

        run_workers(plan.config_path, workers, gpus, device, tune_dir(config), console)
    write_results(open_study(config), config, console)


def workers_on_slurm(plan: TunePlan, workers: int, device, detach: bool, console) -> None:
    """`--executor slurm`: one job array, a task per worker, sharing the study's storage."""
    from comp.runs.launch import run_on_slurm, submit_tasks

    config = plan.config
    from comp.tune.workers import WorkerTask

    task = WorkerTask(plan.config_path, device, config.launch.slurm.cpus_per_task)
    specs = [(f"worker {i}", task, "") for i in range(workers)]
    tasks = submit_tasks(config, tune_dir(config) / LAUNCH, "tune", specs, console)
    run_on_slurm(f"study {config.tune.study}: workers on Slurm", tasks, detach, console)


def show_command(config: Config, console: Console) -> None:
    from comp.tune.results import write_results

    write_results(existing_study(config), config, console)
