"""The sync-free step captured as CUDA graphs (`train.cuda_graphs`): one graph per step shape
(micro-batches x rows x padded width), the whole step in it: both FGM passes, the attack and the
restore, clipping and the optimiser step. An eager BERT-base step on an H200 spent about 43 ms of
CPU launching about 1,050 kernels against 12.5 ms of GPU work (BENCHMARKS.md); a replay launches
them all at once.

- A shape is captured lazily: its first step runs eagerly on a side stream (warm-up: cuBLAS
  workspaces, the optimiser's state), its second is captured, then replayed ever after.
- Every graph draws from one memory pool; `gc` is off during a capture.
- A capture that fails is reported once, and that shape runs eagerly from then on: a fold never
  dies of it.
- The step's inputs go into the graph's own buffers; the learning rate lives in device tensors
  the schedule writes, and DRW switches by a flag in the buffers: no recapture.
"""

from __future__ import annotations

import gc

import torch
from rich.console import Console

from comp.kinds.transformer.step import StepBuffers, SyncFreeStep


def graphs_wanted(setting: str, device: torch.device, world: int) -> bool:
    """`train.cuda_graphs` resolved: auto means on for a single CUDA process."""
    if setting == "false" or device.type != "cuda" or world > 1:
        return False
    return setting in ("auto", "true")


class StepGraphs:
    def __init__(self, step: SyncFreeStep, console: Console) -> None:
        self.step, self.console = step, console
        self.graphs: dict[tuple, torch.cuda.CUDAGraph] = {}
        self.inputs: dict[tuple, StepBuffers] = {}
        self.warmed: set[tuple] = set()
        self.failed: set[tuple] = set()
        self.pool = None
        self.captures = self.replays = 0

    def run(self, buffers: StepBuffers) -> None:
        key = buffers.key
        if key in self.failed:
            self.step.compute(buffers)
        elif key not in self.warmed:
            self._warm_up(buffers)
            self.warmed.add(key)
        elif key not in self.graphs:
            if not self._capture(buffers):  # a capture that worked has replayed this step
                self.step.compute(buffers)
        else:
            self.inputs[key].copy_(buffers)
            self.graphs[key].replay()
            self.replays += 1

    def _warm_up(self, buffers: StepBuffers) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.step.compute(buffers)
        torch.cuda.current_stream().wait_stream(side)

    def _capture(self, buffers: StepBuffers) -> bool:
        """Capture this shape's step and replay it on `buffers`; False if capturing failed."""
        key, static = buffers.key, buffers.clone()
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        gc.disable()
        try:
            with torch.cuda.graph(graph, pool=self.pool):
                self.step.compute(static)
        except Exception as error:  # noqa: BLE001 (a capture can fail in many ways)
            self.failed.add(key)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            self.console.print(
                f"CUDA graph capture failed for step shape {key} ({reason}); that shape runs "
                "eagerly"
            )
            torch.cuda.synchronize()
            return False
        finally:
            gc.enable()
        if self.pool is None:
            self.pool = graph.pool()
        self.graphs[key], self.inputs[key] = graph, static
        self.captures += 1
        static.copy_(buffers)
        graph.replay()
        self.replays += 1
        return True
