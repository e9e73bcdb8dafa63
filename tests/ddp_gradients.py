"""One rank of the two-rank gradient check in tests/test_loop.py: builds the same fold trainer
as the test, joins a gloo group of two, accumulates one batch's gradients through DDP, and
(rank 0) saves them. Usage: python tests/ddp_gradients.py CONFIG EPOCH OUT RANK PORT"""

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
    from tests.test_loop import step_gradients

    grads = step_gradients(config_path, int(epoch), world=2)
    if int(rank) == 0:
        torch.save(grads, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
