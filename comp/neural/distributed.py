"""The device a fold trains on, and several processes for one fold (torchrun,
DistributedDataParallel). Several folds at once, one process per GPU, is `comp.runs.launch`.

Under torchrun every rank trains on its share of each batch; rank 0 alone evaluates and writes
files. On a CPU the gloo backend runs the same code, which is how the tests exercise it.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

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


def resolve_device(name: str) -> torch.device:
    """The torch device for `name` (auto, cpu, cuda, cuda:N); a CUDA device is made current, so
    that pinned copies and caches do not open a context on GPU 0 as well."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CompError(f"--device {name}: CUDA is not available on this machine")
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def peak_memory_mb(device: torch.device) -> float:
    """The GPU allocator's peak, or the process's peak RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(device_name: str) -> tuple[Dist, torch.device]:
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
