"""One rank of the two-rank gradient check in tests/test_loop.py: builds the same fold trainer
as the test, joins a gloo group of two, accumulates one batch's gradients through DDP and
takes a step, and (rank 0) saves the gradients and the loss it logged.
Usage: python tests/ddp_gradients.py CONFIG EPOCH OUT RANK PORT"""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main() -> None:
    config_path, epoch, out, rank, port = sys.argv[1:]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=int(rank), world_size=2)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.test_loop import step_figures

    figures = step_figures(config_path, int(epoch), world=2)
    if int(rank) == 0:
        torch.save(figures, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
