"""`comp train --gpus 0,1,...`: one `comp train --fold K` process per GPU, folds from a queue.

Each process sees only its GPU (CUDA_VISIBLE_DEVICES) and logs to runs/<experiment>/launch/.
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
from comp.io import read_json
from comp.layout import CONFIG, LAUNCH, METRICS, experiment_dir, fold_dir
from comp.runs.frame import FoldResult, print_results
from comp.runs.outputs import write_config_file


def _fold_command(config_path: Path, fold: int, device: str, force: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "comp.cli",
        "train",
        "--config",
        str(config_path),
        "--fold",
        str(fold),
        "--device",
        device,
        *(["--force"] if force else []),
    ]


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
    while pending or running:
        for slot, gpu in enumerate(gpus):
            if slot in running or not pending:
                continue
            fold = pending.pop(0)
            log_path = log_dir / f"fold{fold}.log"
            log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
            command = _fold_command(config_path, fold, device, force)
            running[slot] = (fold, subprocess.Popen(command, env=env, stdout=log, stderr=log), log)
            console.print(f"fold {fold}: started on GPU {gpu} (log {log_path})")
        for slot, (fold, process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                codes[fold] = process.returncode
                state = "finished" if process.returncode == 0 else f"failed ({process.returncode})"
                console.print(f"fold {fold}: {state} on GPU {gpus[slot]}")
                del running[slot]
        time.sleep(0.2)
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
    launch = experiment_dir(config) / LAUNCH
    write_config_file(config, launch)
    codes = train_on_gpus(launch / CONFIG, folds, gpus, device or "cuda", force, launch, console)
    failed = sorted(f for f, code in codes.items() if code != 0)
    if failed:
        raise CompError(f"folds {failed} failed; see {launch}/fold{failed[0]}.log")
    results = [
        FoldResult.from_metrics(
            read_json(fold_dir(config, fold) / METRICS, f"comp train --fold {fold}")
        )
        for fold in folds
    ]
    print_results(results, console)
    return results
