"""The training step without host syncs (`train.step: sync_free`, the default).

The eager step (`eager_step.py`) reads the loss, the gradient norm and FGM's norm back to the
host every step, and lets transformers build attention masks with host-side checks; on a GPU
each read stalls the launch queue. Here the host only prepares what it already knows (token ids,
lengths, the batch's loss normaliser, the phase flag) and copies it into device buffers; the
device does the rest: masks from the lengths, the recipe loss with the phase as a flag, FGM on
the embedding rows the batch touches, foreach clipping, and fused AdamW that skips the update
itself when the loss or the gradient norm is not finite. The loss, the non-finite streak and the
count of skipped steps stay on the device until `read()`, at the logging cadence.

The device part (`compute`, from `StepBuffers`) has fixed shapes for a given batch shape, so
`graphs.StepGraphs` can capture it as a CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.distributed as torch_dist

from comp.kinds.transformer.context import StepContext, StepCounts
from comp.kinds.transformer.fgm import RowFGM
from comp.kinds.transformer.losses import recipe_loss_sum, uses_drw_weights
from comp.neural.batches import gather_rows
from comp.neural.distributed import shard
from comp.neural.encoding import padded_width
from comp.neural.inference import device_context


@dataclass
class StepBuffers:
    """A step's inputs on the device. Micro-batch m is ids[m], types[m], lengths[m], targets[m];
    every micro-batch has one shape (a short last one is padded with rows of target -100).
    `scale` is the number of ranks over the batch's loss normaliser, `drw` the phase flag."""

    ids: torch.Tensor  # [M, B, W] int64
    types: torch.Tensor  # [M, B, W] int64
    lengths: torch.Tensor  # [M, B] int64
    targets: torch.Tensor  # [M, B] int64, -100 for a padding row
    scale: torch.Tensor  # [] float32
    drw: torch.Tensor  # [] float32, 0 or 1

    @property
    def key(self) -> tuple[int, ...]:
        return tuple(self.ids.shape)

    def copy_(self, other: StepBuffers) -> None:
        for field in fields(self):
            getattr(self, field.name).copy_(getattr(other, field.name), non_blocking=True)

    def clone(self) -> StepBuffers:
        return StepBuffers(*(getattr(self, field.name).clone() for field in fields(self)))


@dataclass
class HostBatch:
    """What the host prepares for one step."""

    arrays: dict[str, np.ndarray]  # ids, types, lengths, targets, stacked [M, B, ...]
    scale: float
    drw: float
    rows: int  # rows of the step, all ranks together
    tokens: int  # their real tokens

    def to_device(self, device: torch.device) -> StepBuffers:
        def move(array: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(np.ascontiguousarray(array))
            if device.type == "cuda":  # pinned + non_blocking: no wait for the GPU
                return tensor.pin_memory().to(device, non_blocking=True)
            return tensor.to(device)

        scalars = move(np.asarray([self.scale, self.drw], dtype=np.float32))
        tensors = {name: move(array) for name, array in self.arrays.items()}
        return StepBuffers(**tensors, scale=scalars[0], drw=scalars[1])


@dataclass(frozen=True)
class StepReading:
    """What a step reads back to the host at the logging cadence."""

    loss: float  # the last step's loss
    grad_norm: float  # the last step's gradient norm, before clipping
    nonfinite_in_a_row: int
    skipped_steps: int


def stack_micro_batches(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """[M, B, ...] arrays of M micro-batches; a smaller last one is padded with copies of its
    first row whose target is -100 (they count for nothing), so all have one shape."""
    size = max(len(part["targets"]) for part in parts)
    stacked = {}
    for name in parts[0]:
        padded = []
        for part in parts:
            missing = size - len(part[name])
            padded.append(np.concatenate([part[name], np.repeat(part[name][:1], missing, 0)]))
        stacked[name] = np.stack(padded).astype(np.int64)
    real = np.arange(size)[None, :] < np.asarray([len(p["targets"]) for p in parts])[:, None]
    stacked["targets"] = np.where(real, stacked["targets"], -100)
    return stacked


class SyncFreeStep:
    """One optimiser step of the recipe with no host read. `run(batch, epoch)` does it all;
    `prepare`, `gradients` and `update` are its parts (a CUDA graph captures `compute`)."""

    def __init__(self, context: StepContext) -> None:
        self.c = context
        self.cfg, self.device, self.dist = context.cfg, context.device, context.dist
        self.params = [p for p in context.model.parameters() if p.requires_grad]
        self.fgm = RowFGM(context.model, self.dist.world) if self.cfg.fgm else None
        zero = torch.zeros((), device=self.device)
        self.last_loss, self.streak, self.skipped = zero.clone(), zero.clone(), zero.clone()
        self.grad_norm = zero.clone()
        for p in self.params:  # gradient buffers that stay: zeroed in place, never freed
            p.grad = torch.zeros_like(p)
        self.graphs = None  # a graphs.StepGraphs when the step runs as CUDA graphs

    # -----------------------------------------------------------------------------------------
    # Host side

    def prepare(self, batch: np.ndarray, epoch: int) -> HostBatch | None:
        """The step's inputs, from the whole batch `batch` (each rank takes its share); None
        when the batch has fewer rows than ranks (no rank trains on it)."""
        cfg, c, world = self.cfg, self.c, self.dist.world
        used = batch[: len(batch) - len(batch) % world]
        if len(used) == 0:
            return None
        mine = shard(batch, self.dist)
        lengths = c.encoded.lengths
        width = padded_width(int(lengths[mine].max()), cfg.pad_multiple, c.config.model.max_len)
        micro = -(-len(mine) // cfg.grad_accum)
        parts = []
        for start in range(0, len(mine), micro):
            rows = mine[start : start + micro]
            ids, types, row_lengths = gather_rows(c.encoded, rows, c.pad_id, width)
            parts.append({"ids": ids, "types": types, "lengths": row_lengths,
                          "targets": c.labels[rows]})  # fmt: skip
        drw = uses_drw_weights(cfg.loss, epoch, cfg.drw_start_epoch)
        scale = world / c.batch_normaliser(used, epoch)
        tokens = int(lengths[mine].sum()) * world
        return HostBatch(stack_micro_batches(parts), scale, float(drw), len(used), tokens)

    # -----------------------------------------------------------------------------------------
    # Device side

    def _forward(self, ids: torch.Tensor, types: torch.Tensor, lengths: torch.Tensor):
        positions = torch.arange(ids.shape[1], device=ids.device)
        mask = (positions[None, :] < lengths[:, None])[:, None, None, :]  # [B, 1, 1, W]
        with device_context(self.device, self.cfg.precision, self.cfg.attention):
            logits = self.c.net(input_ids=ids, attention_mask=mask, token_type_ids=types)
        return logits.float()

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, buffers: StepBuffers):
        c = self.c
        return buffers.scale * recipe_loss_sum(
            logits, targets, buffers.drw, c.margins, c.weights, self.cfg.ldam_s
        )

    def gradients(self, buffers: StepBuffers) -> torch.Tensor:
        """Add every micro-batch's gradients (and FGM's second pass) to the gradient buffers;
        returns this rank's share of the batch loss."""
        fgm, total = self.fgm, torch.zeros((), device=self.device)
        micro_batches = buffers.ids.shape[0]
        for m in range(micro_batches):
            ids, types, lengths = buffers.ids[m], buffers.types[m], buffers.lengths[m]
            flat = ids.flatten()
            before = fgm.gradient_rows(flat) if fgm is not None else None
            with self.c.gradient_sync(m == micro_batches - 1, self.fgm):
                loss = self._loss(self._forward(ids, types, lengths), buffers.targets[m], buffers)
                loss.backward()
            total = total + loss.detach()
            if fgm is not None:
                attacked = fgm.attack(flat, before, self.cfg.fgm_eps)  # 0.0: no second pass
                adversarial = self._loss(self._forward(ids, types, lengths), buffers.targets[m],
                                         buffers)  # fmt: skip
                (attacked * adversarial).backward()
                fgm.restore(flat)
        return total

    def update(self, total: torch.Tensor) -> None:
        """Clip, then the optimiser step, which fused AdamW skips where `found_inf` is 1 (a
        non-finite loss or gradient norm); count such steps; zero the gradients in place."""
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm,
                                                   foreach=True)  # fmt: skip
        bad = (~(torch.isfinite(total) & torch.isfinite(grad_norm))).float()
        if self.dist.world > 1:  # every rank makes the same skip decision
            torch_dist.all_reduce(bad, op=torch_dist.ReduceOp.MAX)
        self.c.optimizer.found_inf = bad
        self.c.optimizer.step()
        self.last_loss.copy_(total)
        self.grad_norm.copy_(grad_norm)
        self.streak.mul_(bad).add_(bad)
        self.skipped.add_(bad)
        torch._foreach_zero_([p.grad for p in self.params])

    def compute(self, buffers: StepBuffers) -> None:
        self.update(self.gradients(buffers))

    def run(self, batch: np.ndarray, epoch: int) -> StepCounts:
        host = self.prepare(batch, epoch)
        if host is None:
            return StepCounts(0, 0)
        buffers = host.to_device(self.device)
        if self.graphs is not None and host.rows == self.cfg.batch_size:
            self.graphs.run(buffers)  # the odd-sized last batch of an epoch runs eagerly
        else:
            self.compute(buffers)
        return StepCounts(host.rows, host.tokens)

    def read(self) -> StepReading:
        """The last step's loss and gradient norm and the non-finite counts: the step's one host
        read, at the logging cadence."""
        loss = self.last_loss
        if self.dist.world > 1:  # each rank holds its share: the batch's loss is their mean
            loss = loss.clone()
            torch_dist.all_reduce(loss)
            loss = loss / self.dist.world
        values = torch.stack([loss, self.grad_norm, self.streak, self.skipped])
        loss, grad_norm, streak, skipped = values.tolist()
        return StepReading(loss, grad_norm, int(streak), int(skipped))

    def restore_counts(self, streak: int, skipped: int) -> None:
        self.streak.fill_(streak)
        self.skipped.fill_(skipped)
