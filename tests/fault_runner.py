"""`comp` in this process, killed with SIGKILL at a chosen point: the fault injection of
tests/test_reliability.py. Usage: python tests/fault_runner.py MODE N -- COMP ARGS...

- step N: just before the N-th optimiser step's gradient clipping (mid-training);
- checkpoint N: half-way through writing the N-th training checkpoint (a half-written file);
- outputs N: right after the fold's oof.parquet is renamed into place, before the other outputs
  (the N-th such rename).
"""

import io
import os
import signal
import sys
from pathlib import Path


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def on_nth_call(n: int):
    calls = {"n": 0}

    def reached() -> bool:
        calls["n"] += 1
        return calls["n"] == n

    return reached


def kill_at_step(n: int) -> None:
    import torch

    real, reached = torch.nn.utils.clip_grad_norm_, on_nth_call(n)

    def clip(*args, **kwargs):
        if reached():
            die()
        return real(*args, **kwargs)

    torch.nn.utils.clip_grad_norm_ = clip


def kill_in_checkpoint(n: int) -> None:
    import torch

    real, reached = torch.save, on_nth_call(n)

    def save(obj, target, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer" in obj and reached():
            buffer = io.BytesIO()
            real(obj, buffer)
            half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
            if hasattr(target, "write"):  # comp saves through an open file
                target.write(half)
                target.flush()
            else:
                Path(target).write_bytes(half)
            die()
        return real(obj, target, *args, **kwargs)

    torch.save = save


def kill_in_outputs(n: int) -> None:
    real, reached = os.replace, on_nth_call(n)

    def replace(source, target, *args, **kwargs):
        real(source, target, *args, **kwargs)
        if Path(target).name == "oof.parquet" and reached():
            die()

    os.replace = replace


def main() -> None:
    mode, n, separator, *args = sys.argv[1:]
    assert separator == "--", "usage: fault_runner.py MODE N -- COMP ARGS"
    {"step": kill_at_step, "checkpoint": kill_in_checkpoint, "outputs": kill_in_outputs}[mode](
        int(n)
    )
    from comp.cli import main as comp

    comp(args, prog_name="comp")


if __name__ == "__main__":
    main()
