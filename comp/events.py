"""One stream of training events. A training loop (a fold of a neural kind, `comp pretrain`) tells
an `Events` what happens as it runs; listeners subscribed to it turn that into a progress display,
the history in metrics.json, TensorBoard files (`comp.tensorboard`), or a decision to stop early
(`comp tune`'s pruner).

- `Start(step, total)`: training starts, or resumes at `step`;
- `Step(...)`: every `train.log_every` steps (and at every evaluation and checkpoint): the loss,
  learning rate, gradient norm, skipped steps and throughput;
- `Evaluation(step, epoch, val_macro_f1)`: each validation of a fold.

A listener is a callable taking an event; it returns None, or a reason (a string) to ask the loop
to stop. The loop asks `Events.stop_reason` after each evaluation and, when set, ends the fold
cleanly with `FoldStopped`: the fold frame then writes `stopped.json` instead of `metrics.json`.
A listener with a `close()` method is closed when the run ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from comp.errors import CompError
from comp.progress import StepProgress


@dataclass(frozen=True)
class Start:
    step: int  # 0, or the step a resumed run continues from
    total: int


@dataclass(frozen=True)
class Step:
    step: int
    total: int
    loss: float  # the last step's loss (the whole batch's, over every rank)
    lr: float  # the head's learning rate
    grad_norm: float  # before clipping; not finite on a skipped step
    skipped_steps: int  # steps skipped so far for a non-finite loss or gradient
    samples_per_s: float
    tokens_per_s: float


@dataclass(frozen=True)
class Evaluation:
    step: int
    epoch: int
    val_macro_f1: float


Event = Start | Step | Evaluation
Listener = Callable[[Event], "str | None"]


class Events:
    """The listeners of one run, called in subscription order with every event."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self.listeners: list[Listener] = list(listeners)
        self.stop_reason: str | None = None

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            reason = listener(event)
            if reason and self.stop_reason is None:
                self.stop_reason = reason

    def close(self) -> None:
        for listener in self.listeners:
            close = getattr(listener, "close", None)
            if close is not None:
                close()


class FoldStopped(CompError):
    """A listener asked a fold to stop early (e.g. a pruned tuning trial). Not a failure: the fold
    frame records it in the fold's stopped.json, and the fold counts as unfinished."""

    def __init__(self, reason: str, step: int, val_macro_f1: float | None, fold: int) -> None:
        super().__init__(f"fold {fold} stopped at step {step}: {reason}")
        self.reason, self.step, self.val_macro_f1, self.fold = reason, step, val_macro_f1, fold

    def record(self) -> dict:
        """What stopped.json holds."""
        return {
            "fold": self.fold,
            "reason": self.reason,
            "step": self.step,
            "val_macro_f1": self.val_macro_f1,
        }


class History:
    """A listener keeping what a fold's metrics.json records as `history`: the loss (with the
    learning rate and gradient norm) at every `Step` and the validation macro-F1 at every
    `Evaluation`. Throughput is left out: a resumed run must record what an uninterrupted one
    does."""

    def __init__(self, saved: dict | list | None = None) -> None:
        self.loss: list[dict] = []
        self.val: list[dict] = []
        if isinstance(saved, dict):
            self.loss, self.val = list(saved.get("loss", [])), list(saved.get("val", []))
        elif isinstance(saved, list):  # comp before the event stream kept the evaluations only
            self.val = [{k: e[k] for k in ("step", "epoch", "val_macro_f1")} for e in saved]

    def __call__(self, event: Event) -> None:
        if isinstance(event, Step):
            self.loss.append(
                {"step": event.step, "loss": event.loss, "lr": event.lr,
                 "grad_norm": event.grad_norm}
            )  # fmt: skip
        elif isinstance(event, Evaluation):
            self.val.append(
                {"step": event.step, "epoch": event.epoch, "val_macro_f1": event.val_macro_f1}
            )

    def as_dict(self) -> dict:
        return {"loss": list(self.loss), "val": list(self.val)}


class ShowProgress:
    """A listener that shows a run's `Step`s on a `StepProgress` (a live bar in a terminal, a
    plain line every tenth of the way in a log)."""

    def __init__(self, progress: StepProgress) -> None:
        self.progress = progress

    def __call__(self, event: Event) -> None:
        if isinstance(event, Step):
            text = f"loss {event.loss:.4f}  lr {event.lr:.2e}  {event.samples_per_s:.1f} samples/s"
            self.progress.update(event.step, text)
