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
    with file_lock(folder / LOCK, description):
        yield


def lock_is_held(path: Path) -> bool:
    """Whether a live process holds the lock file `path` (a dead holder's lock is free)."""
    if not path.is_file():
        return False
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold the lock file `path` for a short critical section, waiting for it if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def file_lock(path: Path, description: str) -> Iterator[None]:
    """Hold the lock file `path` for the block; BusyError at once if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
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
