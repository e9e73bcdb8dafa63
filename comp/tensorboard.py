"""`train.tensorboard: true`: a listener of the training events (`comp.events`) that writes them as
TensorBoard scalars (`events.out.tfevents.*`) into a folder: a fold's, or `comp pretrain`'s output.

Written with tensorboard's own event-file writer (no torch, no TensorFlow): `train/loss`,
`train/lr`, `train/grad_norm`, `train/skipped_steps`, `train/samples_per_s`,
`train/tokens_per_s` at every `Step`, `val/macro_f1` at every `Evaluation`. Every run starts its
file with a session START at the step it starts from (S when resumed at S, else 0), so
TensorBoard drops the steps at and after S that an earlier run in the folder had written
(torch's SummaryWriter does the same with `purge_step`). A fold that starts over also loses its
old event files (`comp.runs.frame.clear_fold`).

`tensorboard` is an optional dependency: `pip install 'tensorboard>=2.14'` (in the checkout:
`pip install -e '.[tensorboard]'`).
"""

from __future__ import annotations

import time
from pathlib import Path

from comp.errors import CompError
from comp.events import Evaluation, Event, Start, Step

EVENT_FILES = "events.out.tfevents.*"
STEP_SCALARS = ("loss", "lr", "grad_norm", "skipped_steps", "samples_per_s", "tokens_per_s")


class TensorBoard:
    def __init__(self, folder: Path) -> None:
        try:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError:
            raise CompError(
                "train.tensorboard is true but the tensorboard package is not installed: "
                "pip install 'tensorboard>=2.14' (or set train.tensorboard=false)"
            ) from None
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.writer = EventFileWriter(str(folder))

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event as EventProto
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(
            value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()]
        )
        self.writer.add_event(EventProto(wall_time=time.time(), step=step, summary=summary))

    def __call__(self, event: Event) -> None:
        if isinstance(event, Start):
            from tensorboard.compat.proto.event_pb2 import Event as EventProto
            from tensorboard.compat.proto.event_pb2 import SessionLog

            start = SessionLog(status=SessionLog.START)
            self.writer.add_event(EventProto(wall_time=time.time(), step=event.step,
                                             session_log=start))  # fmt: skip
        elif isinstance(event, Step):
            values = {f"train/{name}": getattr(event, name) for name in STEP_SCALARS}
            self._scalars(event.step, values)
        elif isinstance(event, Evaluation):
            self._scalars(event.step, {"val/macro_f1": event.val_macro_f1})

    def close(self) -> None:
        self.writer.close()
