"""Spreading folds: one way in, two executors (`launch.executor`, `--executor`).

- `local` with `--gpus 0,1,...`: one `comp train --fold K` process per GPU id (an id given twice
  runs two folds at once on it), folds from a queue; each process sees only its GPU
  (CUDA_VISIBLE_DEVICES) and logs to runs/<experiment>/launch/fold<K>.log. Ctrl-C or SIGTERM
  stops every process (each saves its fold's checkpoint) and says per fold where it stopped.
- `slurm`: one job array, a task per fold (`comp.runs.slurm`), followed in a table until every
  task has ended (`comp.runs.jobs`), or left to run with `--detach`.
Without either, the folds train in this process (`comp.runs.frame.train_folds`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from comp.config import Config
from comp.errors import CompError
from comp.interrupt import Interrupted
from comp.io import UnreadableFile, read_json
from comp.kinds import get_kind
from comp.layout import (
    CONFIG,
    JOB_RECORD,
    METRICS,
    SLURM_LOGS,
    fold_dir,
    fold_log,
    launch_dir,
    pretrain_launch_dir,
)
from comp.locks import folder_lock
from comp.runs.frame import (
    FoldResult,
    clear_fold,
    data_hashes,
    finished_metrics,
    fold_fingerprint,
    print_results,
    train_folds,
)
from comp.runs.outputs import write_config_file


def launch_train(
    config: Config,
    folds: list[int],
    device: str | None,
    force: bool,
    gpus: list[str],
    detach: bool,
    console: Console,
) -> list[FoldResult]:
    """`comp train`: the folds in this process, one process per GPU, or a Slurm job array."""
    if config.launch.executor == "slurm":
        return train_folds_on_slurm(config, folds, device, force, detach, console)
    if gpus:
        return train_folds_on_gpus(config, folds, gpus, device, force, console)
    return train_folds(config, folds, device, force, console)


def _results(config: Config, folds: list[int], console: Console) -> list[FoldResult]:
    results = [
        FoldResult.from_metrics(
            read_json(fold_dir(config, fold) / METRICS, f"comp train --fold {fold}")
        )
        for fold in folds
    ]
    print_results(results, console)
    return results


# ---------------------------------------------------------------------------------------------
# local: a process per GPU


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _stop(running: dict, signum: int, console: Console) -> None:
    """Pass the stop signal on to every fold still running, wait for them to save, and say per
    fold what its log ends with."""
    for _, process, _ in running.values():
        if process.poll() is None:
            process.send_signal(signum)
    for fold, process, log in running.values():
        process.wait()
        log.close()
        console.print(f"fold {fold}: {_last_line(Path(log.name)) or 'stopped'}", soft_wrap=True)


def _fold_process(config_path: Path, fold: int, device: str, force: bool) -> list[str]:
    """The command that trains one fold on this machine, from a resolved config."""
    args = ["train", "--config", str(config_path), "--fold", str(fold), "--executor", "local"]
    args += ["--device", device] + (["--force"] if force else [])
    return [sys.executable, "-m", "comp.cli", *args]


def _start(config_path: Path, fold: int, gpu: str, device: str, force: bool, log_dir: Path):
    log = open(fold_log(log_dir, fold), "w", encoding="utf-8")  # noqa: SIM115
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
    command = _fold_process(config_path, fold, device, force)
    # its own session: the terminal's Ctrl-C reaches only comp, which passes it on once (a
    # second SIGINT would stop the fold before it saves)
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    return fold, process, log


def train_on_gpus(
    config_path: Path,
    folds: list[int],
    gpus: list[str],
    device: str,
    force: bool,
    log_dir: Path,
    console: Console,
) -> dict[int, int]:
    """Run `comp train --fold K` for every fold, at most one process per entry of `gpus` at a
    time: an id given twice (`--gpus 0,0`) runs two folds at once on that GPU. Returns the exit
    code of every fold."""
    if not gpus:
        raise CompError("--gpus: give at least one GPU id, e.g. --gpus 0,1")
    pending, running, codes = list(folds), {}, {}
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        while pending or running:
            for slot, gpu in enumerate(gpus):
                if slot not in running and pending:
                    running[slot] = _start(config_path, pending.pop(0), gpu, device, force,
                                           log_dir)  # fmt: skip
                    console.print(f"fold {running[slot][0]}: started on GPU {gpu} "
                                  f"(log {running[slot][2].name})")  # fmt: skip
            for slot, (fold, process, log) in list(running.items()):
                if process.poll() is not None:
                    log.close()
                    codes[fold] = code = process.returncode
                    state = "finished" if code == 0 else f"failed ({code})"
                    console.print(f"fold {fold}: {state} on GPU {gpus[slot]}")
                    del running[slot]
            time.sleep(0.2)
    except Interrupted as stop:
        _stop(running, stop.signum, console)
        unstarted = f"; folds {pending} had not started" if pending else ""
        raise Interrupted(stop.signum, f"every fold was stopped{unstarted}; the same command "
                          "resumes them") from None  # fmt: skip
    return codes


def train_folds_on_gpus(
    config: Config,
    folds: list[int],
    gpus: list[str],
    device: str | None,
    force: bool,
    console: Console,
) -> list[FoldResult]:
    """Every fold in its own process, one per GPU id; the resolved config goes to the processes
    through runs/<experiment>/launch/config.yaml."""
    launch = launch_dir(config)
    write_config_file(config, launch)
    codes = train_on_gpus(launch / CONFIG, folds, gpus, device or "cuda", force, launch, console)
    failed = sorted(f for f, code in codes.items() if code != 0)
    if failed:
        raise CompError(f"folds {failed} failed; see {fold_log(launch, failed[0])}")
    return _results(config, folds, console)


# ---------------------------------------------------------------------------------------------
# slurm: a job array, a task per fold


def _folds_to_submit(config: Config, folds: list[int], force: bool, running: set[str]) -> list:
    """The folds that need a task: not finished (unless forced), not in a task still active."""
    hashes, fingerprint = data_hashes(config), fold_fingerprint(config)
    todo = []
    for fold in folds:
        if f"fold {fold}" in running:
            continue
        try:
            done = None if force else finished_metrics(config, fold, *hashes, fingerprint)
        except UnreadableFile:  # a truncated metrics.json: the fold trains again
            done = None
        if done is None:
            todo.append(fold)
    return todo


def train_folds_on_slurm(
    config: Config,
    folds: list[int],
    device: str | None,
    force: bool,
    detach: bool,
    console: Console,
) -> list[FoldResult]:
    """One job array of `comp train --fold K` tasks (the folds that need one), followed until
    every task ended; exit 2 names the folds that did not finish and their logs."""
    from comp.runs.jobs import active_tasks

    launch = launch_dir(config)
    write_config_file(config, launch)
    active = active_tasks(launch / JOB_RECORD)
    todo = _folds_to_submit(config, folds, force, {t.label for t in active})
    if force:  # cleared here, once: a task that is requeued must resume, not start over
        for fold in todo:  # never under a process training it here (BusyError)
            with folder_lock(fold_dir(config, fold), f"fold {fold} of {config.train.experiment}"):
                clear_fold(fold_dir(config, fold), get_kind(config.model.kind).FOLD_FILES)
    from comp.runs.slurm import FoldTask

    threads = config.launch.slurm.cpus_per_task
    specs = [
        (f"fold {fold}", FoldTask(launch / CONFIG, fold, device, threads),
         str(fold_dir(config, fold) / METRICS))
        for fold in todo
    ]  # fmt: skip
    tasks = submit_tasks(config, launch, "train", specs, console) if specs else []
    wanted = {f"fold {fold}" for fold in folds}
    waiting = [t for t in active if t.label in wanted] + tasks
    if waiting:
        run_on_slurm(f"{config.train.experiment}: folds on Slurm", waiting, detach, console)
    return [] if detach and waiting else _results(config, folds, console)


def submit_tasks(
    config: Config,
    launch: Path,
    kind: str,
    specs: list[tuple[str, object, str]],
    console: Console,
) -> list:
    """Submit one job array, a task per (label, SlurmTask, the file marking it done), and
    record it in `launch`/job.json."""
    from comp.runs.jobs import Task, record
    from comp.runs.slurm import log_path, submit

    folder = launch / SLURM_LOGS
    name = f"comp-{kind}-{launch.parent.name}"
    ids = submit(config, folder, name, [task for _, task, _ in specs])
    now = time.time()
    tasks = [
        Task(label, job_id, str(log_path(folder, job_id)), done, now)
        for (label, _, done), job_id in zip(specs, ids, strict=True)
    ]
    record(launch, kind, launch.parent.name, tasks, launch / CONFIG)
    console.print(f"submitted job {ids[0].split('_')[0]} ({len(ids)} tasks), logs in {folder}")
    return tasks


def run_on_slurm(title: str, tasks: list, detach: bool, console: Console) -> None:
    """Follow submitted tasks to their end (exit 2 for those that did not finish), or leave
    them running with --detach."""
    if detach:
        _detached(tasks, console)
    else:
        _wait(title, tasks, console)


def pretrain_on_slurm(config: Config, device: str | None, detach: bool, console: Console):
    """`comp pretrain --executor slurm`: one task pretraining on a GPU node, unless the folder
    is pretrained with these settings already or a task of an earlier submission is still on
    it (then that one is followed)."""
    from comp.neural.files import PRETRAIN_METRICS
    from comp.pretrain.run import finished_pretraining, plan_pretraining
    from comp.runs.jobs import active_tasks
    from comp.runs.slurm import PretrainTask

    plan = plan_pretraining(config)
    if (done := finished_pretraining(plan)) is not None:
        console.print(f"{plan.out}: pretrained before with these settings ({done['steps']} "
                      "steps); skipped, remove it to pretrain again")  # fmt: skip
        return
    launch = pretrain_launch_dir(config)
    write_config_file(config, launch)
    tasks = active_tasks(launch / JOB_RECORD)
    if tasks:
        console.print(f"pretraining is on Slurm already (job {tasks[0].job_id}): following it")
    else:
        task = PretrainTask(launch / CONFIG, device, config.launch.slurm.cpus_per_task)
        done_file = str(plan.out / PRETRAIN_METRICS)
        tasks = submit_tasks(config, launch, "pretrain", [("pretrain", task, done_file)], console)
    run_on_slurm(f"pretraining {plan.out} on Slurm", tasks, detach, console)


def _detached(tasks: list, console: Console) -> None:
    ids = " ".join(sorted({t.job_id.split("_")[0] for t in tasks}))
    console.print(f"the tasks run on: follow them with `comp jobs`, cancel them: `scancel {ids}`")


def _wait(title: str, tasks: list, console: Console) -> None:
    """Follow the tasks; Ctrl-C stops the waiting only. A CompError for tasks that did not
    finish, naming them and their logs."""
    from comp.runs.jobs import watch

    try:
        now = watch(title, tasks, console)
    except Interrupted as stop:
        ids = " ".join(sorted({t.job_id.split("_")[0] for t in tasks}))
        raise Interrupted(
            stop.signum,
            f"stopped waiting; the tasks go on: follow them with `comp jobs`, cancel them "
            f"with `scancel {ids}`",
        ) from None
    failed = [t for t in tasks if now[t.job_id] != "finished"]
    if failed:
        raise CompError(
            "did not finish: "
            + "; ".join(f"{t.label} {now[t.job_id]} (log {t.log})" for t in failed)
        )
