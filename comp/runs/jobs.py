"""The Slurm tasks comp submitted: their records (`launch/job.json` beside the work they do), their
state, a table that follows them until they end, and `comp jobs`.

A task is finished when the file that marks its work done appeared after it was submitted (a
fold's metrics.json, a pretrained backbone's metrics) or, for work without such a file (a tuning
worker), when Slurm says COMPLETED. Otherwise its state is Slurm's (from squeue): pending,
running, or failed with Slurm's reason; a task squeue has forgotten without leaving its file is
gone (cancelled while pending, or purged after it ended).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from comp.config import Config
from comp.io import UnreadableFile, read_json, write_json_atomically
from comp.layout import ENSEMBLES, JOB_RECORD, LAUNCH, PRETRAIN, TUNE
from comp.progress import fitted_table
from comp.runs.slurm import SQUEUE_PENDING, SQUEUE_RUNNING, task_states

POLL_S = 5.0


@dataclass(frozen=True)
class Task:
    label: str  # "fold 3", "worker 0", "pretrain"
    job_id: str
    log: str
    done_file: str = ""  # appears when the task's work is done; "" = Slurm's COMPLETED
    submitted: float = 0.0  # time.time() at submission


def _done(task: Task) -> bool:
    path = Path(task.done_file)
    return bool(task.done_file) and path.is_file() and path.stat().st_mtime >= task.submitted


def state_of(task: Task, slurm_state: str | None) -> str:
    """finished | pending | running | failed (<Slurm's state>) | gone."""
    if slurm_state in SQUEUE_PENDING:
        return "pending"
    if slurm_state in SQUEUE_RUNNING:
        return "running"
    if _done(task) or (slurm_state == "COMPLETED" and not task.done_file):
        return "finished"
    if slurm_state is None:
        return "gone"
    return f"failed ({slurm_state})"


def states(tasks: list[Task]) -> dict[str, str]:
    slurm = task_states([t.job_id for t in tasks])
    return {t.job_id: state_of(t, slurm.get(t.job_id)) for t in tasks}


def ended(state: str) -> bool:
    return state not in ("pending", "running")


def task_table(title: str, tasks: list[Task], now: dict[str, str], console: Console):
    rows = [[t.label, t.job_id, now[t.job_id], t.log] for t in tasks]
    headers = ["task", "job", "state", "log"]
    return fitted_table(title, headers, rows, {"task", "state", "log"}, console.width)


def watch(title: str, tasks: list[Task], console: Console, poll_s: float = POLL_S) -> dict:
    """Follow the tasks until every one has ended: a live table in a terminal, the table again at
    each change in a log. Returns each task's last state."""
    from rich.live import Live

    now = states(tasks)
    live = Live(task_table(title, tasks, now, console), console=console, auto_refresh=False)
    if console.is_terminal:
        live.start()
    else:
        console.print(task_table(title, tasks, now, console))
    try:
        while not all(ended(s) for s in now.values()):
            time.sleep(poll_s)
            before, now = now, states(tasks)
            if console.is_terminal:
                live.update(task_table(title, tasks, now, console), refresh=True)
            elif now != before:
                console.print(task_table(title, tasks, now, console))
    finally:
        if console.is_terminal:
            live.stop()
    return now


def _read_record(path: Path) -> dict:
    # job.json only records submissions: deleting it forgets them, the tasks go on
    saved = read_json(path, f"rm {path}")
    if not isinstance(saved.get("submissions"), list):
        raise UnreadableFile(path, "no list of submissions", f"rm {path}")
    return saved


def record(folder: Path, kind: str, name: str, tasks: list[Task], config_path: Path) -> Path:
    """Add a submission to `folder`/job.json (every submission of that work, newest last)."""
    path = folder / JOB_RECORD
    saved = {"submissions": []}
    if path.is_file():
        saved = _read_record(path)
        _tasks_of(saved, path)  # a damaged record is named, not extended
    entry = {"kind": kind, "name": name, "config": str(config_path),
             "tasks": [asdict(t) for t in tasks]}  # fmt: skip
    saved["submissions"].append(entry)
    write_json_atomically(path, saved)
    return path


def recorded_tasks(path: Path) -> list[tuple[str, Task]]:
    """(the submission's name, task) of every task in a job.json, oldest first."""
    return _tasks_of(_read_record(path), path)


def _tasks_of(saved: dict, path: Path) -> list[tuple[str, Task]]:
    found = []
    for i, submission in enumerate(saved["submissions"]):
        try:
            found += [(str(submission["name"]), Task(**task)) for task in submission["tasks"]]
        except (KeyError, TypeError) as error:
            raise UnreadableFile(path, f"submission {i}: {error}", f"rm {path}") from None
    return found


def active_tasks(path: Path) -> list[Task]:
    """The tasks of a job.json that are still pending or running."""
    if not path.is_file():
        return []
    tasks = [task for _, task in recorded_tasks(path)]
    now = states(tasks)
    return [t for t in tasks if not ended(now[t.job_id])]


def job_records(config: Config) -> list[Path]:
    """Every job.json under train.runs_dir: experiments', studies' and pretraining's."""
    runs = Path(config.train.runs_dir)
    if not runs.is_dir():
        return []
    found = [p for p in sorted(runs.glob(f"*/{LAUNCH}/{JOB_RECORD}")) if p.parts[-3] != ENSEMBLES]
    for reserved in (TUNE, PRETRAIN):  # one folder deeper: runs/tune/<study>/launch
        found += sorted(runs.glob(f"{reserved}/*/{LAUNCH}/{JOB_RECORD}"))
    return found


def jobs_command(config: Config, console: Console) -> list[tuple[str, Task, str]]:
    """`comp jobs`: every task comp submitted under train.runs_dir, with its state now."""
    listed = [pair for path in job_records(config) for pair in recorded_tasks(path)]
    if not listed:
        console.print(f"no jobs submitted under {config.train.runs_dir} (--executor slurm)")
        return []
    now = states([task for _, task in listed])
    rows = [[name, t.label, t.job_id, now[t.job_id], t.log] for name, t in listed]
    headers = ["work", "task", "job", "state", "log"]
    left = {"work", "task", "state", "log"}
    console.print(fitted_table("jobs comp submitted", headers, rows, left, console.width))
    return [(name, t, now[t.job_id]) for name, t in listed]
