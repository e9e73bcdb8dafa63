"""The sync-free step captured as CUDA graphs (`train.cuda_graphs`): one graph per step shape
(micro-batches x rows x padded width), the whole step in it: both FGM passes, the attack and the
restore, clipping and the optimiser step. An eager BERT-base step on an H200 spent about 43 ms of
CPU launching about 1,050 kernels against 12.5 ms of GPU work (BENCHMARKS.md); a replay launches
them all at once.

- A shape is captured lazily: its first step runs eagerly on a side stream (warm-up: cuBLAS
  workspaces, the optimiser's state), its second is captured, then replayed ever after.
- Every graph draws from one memory pool; `gc` is off during a capture.
- A capture that fails turns graphs off for the whole process (`graphs_off` says why, on stderr
  too): that step and every later one run eagerly, and no trainer of the process captures again,
  since a failed capture can leave the caching allocator and the CUDA generator in a state that
  another capture would trip on. A fold never dies of it.
- The step's inputs go into the graph's own buffers; the learning rate lives in device tensors
  the schedule writes, and DRW switches by a flag in the buffers: no recapture.
"""

from __future__ import annotations

import contextlib
import gc
import sys

import torch

from comp.kinds.transformer.step import StepBuffers, SyncFreeStep

_off_reason: str | None = None  # set by the process's first failed capture


def graphs_off() -> str | None:
    """Why CUDA graphs are off in this process (a capture failed), or None."""
    return _off_reason


def graphs_wanted(setting: str, device: torch.device, world: int) -> bool:
    """`train.cuda_graphs` resolved: auto means on for a single CUDA process, unless a capture
    already failed in this process."""
    if setting == "false" or device.type != "cuda" or world > 1 or _off_reason is not None:
        return False
    return setting in ("auto", "true")


class StepGraphs:
    def __init__(self, step: SyncFreeStep) -> None:
        self.step = step
        self.graphs: dict[tuple, torch.cuda.CUDAGraph] = {}
        self.inputs: dict[tuple, StepBuffers] = {}
        self.warmed: set[tuple] = set()
        self.failed: set[tuple] = set()
        self.pool = None
        self.captures = self.replays = 0

    def run(self, buffers: StepBuffers) -> None:
        key = buffers.key
        if _off_reason is not None:
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
        stream = torch.cuda.current_stream()
        torch.cuda.synchronize()
        gc.disable()
        try:
            with torch.cuda.graph(graph, pool=self.pool):
                self.step.compute(static)
        except Exception as error:  # noqa: BLE001 (a capture can fail in many ways)
            self._turn_off(key, error, graph, stream)
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

    def _turn_off(self, key: tuple, error: Exception, graph, stream) -> None:
        """Graphs off for the process, said on stderr (the fold's console may be quiet), and the
        stream that the capture left current put back."""
        global _off_reason
        text = str(error).strip()
        reason = text.splitlines()[0] if text else repr(error)
        _off_reason = f"capture of step shape {key} failed: {reason}"
        self.failed.add(key)
        message = f"CUDA graphs off for this process: {_off_reason}; training goes on eagerly"
        print(message, file=sys.stderr, flush=True)
        torch.cuda.set_stream(stream)  # graph's __exit__ skips this when capture_end raises
        for cleanup in (graph.reset, torch.cuda.synchronize):  # if they fail, eager steps say why
            with contextlib.suppress(Exception):
                cleanup()
