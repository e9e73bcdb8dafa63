"""How a failure the user can act on reads: one line and an exit code, the same for the command
line (comp.cli) and for a Slurm task (comp.runs.slurm), whose log is all the user sees."""

from __future__ import annotations

from dataclasses import dataclass

from comp.errors import CompError
from comp.interrupt import Interrupted
from comp.io import DiskFull, disk_full


@dataclass(frozen=True)
class Failure:
    label: str  # "error" or "stopped"
    message: str
    exit_code: int


def describe_failure(error: BaseException) -> Failure | None:
    """The one line for a CompError, a full disk anywhere, or a stop signal; None for anything
    else (a bug: its traceback is what helps)."""
    if isinstance(error, Interrupted):
        return Failure("stopped", str(error), error.exit_code)
    if isinstance(error, CompError):
        return Failure("error", str(error), error.exit_code)
    if isinstance(error, Exception) and disk_full(error):  # a write outside comp's own writers
        full = DiskFull(getattr(error, "filename", None) or "a file comp was writing")
        return Failure("error", str(full), full.exit_code)
    return None
