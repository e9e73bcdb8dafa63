"""Stopping cleanly on Ctrl-C (SIGINT) and on a scheduler's SIGTERM.

Commands that train (`comp train`, `comp pretrain`, `comp tune`) run under `stop_signals()`:

- inside `at_step_boundaries()` (a training loop that can save its state) the first signal only
  sets a flag: the loop asks `requested()` after each step, writes a checkpoint at the step it
  reached and raises `Interrupted` saying which step the same command resumes from;
- anywhere else it raises `Interrupted` at once: nothing is half-written (outputs are renamed
  into place only when complete), and the same command starts that piece of work again;
- a second SIGINT raises at once wherever it lands (someone who really wants out now).

`Interrupted` is a BaseException, like KeyboardInterrupt, so `except Exception` never swallows it;
the CLI prints its message in one line and exits with 128 + the signal's number (130 for SIGINT,
143 for SIGTERM). A Slurm task adds SIGUSR2 (submitit's warning before a time limit or a
preemption) to the signals it defers, then hands it back to submitit (`comp.runs.slurm`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_signals_here() -> tuple[int, ...]:
    """SIGINT and SIGTERM; in a Slurm task run by submitit, also SIGUSR2 (its warning before the
    time limit or a preemption: the task then saves, and submitit requeues it)."""
    under_submitit = os.environ.get("SUBMITIT_EXECUTOR") == "slurm"
    return STOP_SIGNALS + ((signal.SIGUSR2,) if under_submitit else ())


class Interrupted(BaseException):
    """A stop signal ended the work; `str()` says what was kept and how to go on."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")
        self.signum, self.detailed = signum, bool(message)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    deferring = 0  # how many at_step_boundaries() blocks are open
    requested: int | None = None  # the signal a deferring loop has not acted on yet


_state = _State()


def _handler(signum: int, frame) -> None:
    if _state.deferring and _state.requested is None:
        _state.requested = signum  # the loop stops at its next step boundary
        return
    raise Interrupted(signum)


@contextmanager
def stop_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Handle `signals` as the module says for the block; the previous handlers come back."""
    previous = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, _handler)
    _state.requested = None
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.requested = None


@contextmanager
def at_step_boundaries() -> Iterator[None]:
    """A loop that checks `requested()` after each step and saves before it stops."""
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1


def requested() -> int | None:
    """The stop signal received inside `at_step_boundaries()` and not acted on yet."""
    return _state.requested
