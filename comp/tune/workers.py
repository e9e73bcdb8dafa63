"""`comp tune --workers N`: N worker processes sharing the study on this machine, each running
`comp tune --worker` with the study's config; with `--gpus 0,1` worker i sees GPU ids[i % n] only
(an id given twice: two workers share that GPU). Logs in runs/tune/<study>/workers/."""

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
from comp.layout import WORKERS
from comp.runs.slurm import SlurmTask


class WorkerTask(SlurmTask):
    """A tuning worker as a Slurm task: `comp tune --worker` with the study's config."""

    def run(self, config: Config, console) -> None:
        from comp.tune.run import worker_command

        worker_command(config, self.device, console)


def worker_argv(config_path: Path, device: str | None) -> list[str]:
    command = [sys.executable, "-m", "comp.cli", "tune", "--config", str(config_path), "--worker"]
    return command + (["--device", device] if device else [])


def run_workers(
    config_path: Path,
    workers: int,
    gpus: list[str],
    device: str | None,
    folder: Path,
    console: Console,
) -> None:
    """Start the workers, wait for all of them; a CompError naming the logs of those that
    failed. A stop signal is passed on to each worker once (they run in their own sessions, out
    of reach of the terminal's Ctrl-C, whose second signal would not let them mark their trial
    failed): each marks its running trial failed."""
    logs = folder / WORKERS
    logs.mkdir(parents=True, exist_ok=True)
    running = []
    for i in range(workers):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        log_path = logs / f"worker{i}.log"
        log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed when it ends)
        argv = worker_argv(config_path, device or ("cuda" if gpus else None))
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        running.append((i, process, log, log_path))
        where = f" on GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else ""
        console.print(f"worker {i}: started{where} (log {log_path})")
    failed = []
    try:
        while any(process.poll() is None for _, process, _, _ in running):
            time.sleep(0.5)
    except Interrupted as stop:
        for _, process, _, _ in running:
            if process.poll() is None:
                process.send_signal(stop.signum)
        raise Interrupted(stop.signum, "every worker was stopped, its running trial marked "
                          "failed; the same command goes on with new trials") from None  # fmt: skip
    finally:
        for i, process, log, log_path in running:
            code = process.wait()
            log.close()
            console.print(f"worker {i}: ended ({'ok' if code == 0 else f'exit {code}'})")
            if code != 0:
                failed.append(str(log_path))
    if failed:
        raise CompError(f"{len(failed)} worker(s) failed; see {', '.join(failed)}")
