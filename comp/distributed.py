"""Several processes for one fold (torchrun, DistributedDataParallel) and one process per GPU
for several folds (`comp train --gpus`).

Under torchrun every rank trains on its share of each batch; rank 0 alone evaluates and writes
files. On a CPU the gloo backend runs the same code, which is how the tests exercise it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as torch_dist

from comp.errors import CompError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch_dist.barrier()


SINGLE = Dist()  # one process, no torchrun


def setup(device_name: str, resolve_device) -> tuple[Dist, torch.device]:
    """(Dist, device) for this process: single process, or a rank started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), resolve_device(device_name)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return Dist(torch_dist.get_rank(), torch_dist.get_world_size()), device


def teardown(dist: Dist) -> None:
    if dist.world > 1 and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def wrap(model: torch.nn.Module, dist: Dist, device: torch.device) -> torch.nn.Module:
    """The module to train through: DDP across ranks, or the model itself."""
    if dist.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def shard(rows, dist: Dist):
    """This rank's share of a batch (every rank sees the same batch order). Every rank gets the
    same number of rows, so all run the same number of backward passes (each one is a DDP
    all-reduce): up to world - 1 rows of a batch are left out."""
    usable = len(rows) - len(rows) % dist.world
    return rows[:usable][dist.rank :: dist.world]


# ---------------------------------------------------------------------------------------------
# One process per GPU, folds from a queue


def train_on_gpus(
    config_path: Path,
    folds: list[int],
    gpus: list[str],
    device: str,
    force: bool,
    log_dir: Path,
    console,
) -> dict[int, int]:
    """Run `comp train --fold K` for every fold, at most one process per GPU at a time, each
    seeing only its GPU (CUDA_VISIBLE_DEVICES). Returns the exit code of every fold."""
    if not gpus:
        raise CompError("--gpus: give at least one GPU id, e.g. --gpus 0,1")
    pending, running, codes = list(folds), {}, {}
    log_dir.mkdir(parents=True, exist_ok=True)
    while pending or running:
        for gpu in [g for g in gpus if g not in running]:
            if not pending:
                break
            fold = pending.pop(0)
            log = open(log_dir / f"fold{fold}.log", "w", encoding="utf-8")  # noqa: SIM115
            args = [
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
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
            running[gpu] = (fold, subprocess.Popen(args, env=env, stdout=log, stderr=log), log)
            console.print(f"fold {fold}: started on GPU {gpu} (log {log_dir / f'fold{fold}.log'})")
        for gpu, (fold, process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                codes[fold] = process.returncode
                state = "finished" if process.returncode == 0 else f"failed ({process.returncode})"
                console.print(f"fold {fold}: {state} on GPU {gpu}")
                del running[gpu]
        time.sleep(0.2)
    return codes
