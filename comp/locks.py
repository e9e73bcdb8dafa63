"""One process per folder: an OS lock on a file in the folder a process writes (a fold that
trains, a backbone that `comp pretrain` makes).

`fcntl.flock` locks belong to the open file, so the kernel releases them when the process dies,
however it dies (kill -9 included): no stale lock can outlive its process. The holder writes its
pid into the file, so that a second process can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from comp.errors import CompError

LOCK = ".lock"


class BusyError(CompError):
    pass


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def folder_lock(folder: Path, description: str) -> Iterator[None]:
    """Hold the lock of `folder` for the block; BusyError at once if another process holds it.
    `description` names what is trained there in the message (e.g. "fold 0 of demo_tiny")."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the whole block)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(
                f"{description} is being trained by pid {_holder(path)} ({path}); wait for it "
                "to finish or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock
