"""The eager training step (`train.step: eager`): the step before the sync-free one, kept as the
reference it is checked against (tests/test_loop.py) and for A/B runs on a GPU. It reads the
loss, the gradient norm and FGM's norm back to the host every step."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as torch_dist

from comp.kinds.transformer.context import StepContext, StepCounts
from comp.kinds.transformer.fgm import FGM
from comp.kinds.transformer.losses import recipe_loss
from comp.kinds.transformer.step import StepReading
from comp.neural.batches import collate
from comp.neural.distributed import shard
from comp.neural.inference import device_context


class EagerStep:
    def __init__(self, context: StepContext) -> None:
        self.c = context
        self.cfg, self.device, self.dist = context.cfg, context.device, context.dist
        self.fgm = FGM(context.model) if self.cfg.fgm else None
        self.last_loss, self.grad_norm, self.streak, self.skipped = 0.0, 0.0, 0, 0

    def _forward(self, inputs: dict) -> torch.Tensor:
        with device_context(self.device, self.cfg.precision, self.cfg.attention):
            return self.c.net(**inputs).float()

    def _loss_sum(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        """The sum over rows of each row's (weighted) loss."""
        cfg = self.cfg
        if cfg.loss == "ce":
            return torch.nn.functional.cross_entropy(cfg.ldam_s * logits, targets, reduction="sum")
        return recipe_loss(
            logits,
            targets,
            epoch,
            drw_start_epoch=cfg.drw_start_epoch,
            margins=self.c.margins,
            weights=self.c.weights,
            s=cfg.ldam_s,
            reduction="sum",
        )

    def _micro_batch(self, rows: np.ndarray, scale: float, epoch: int, last: bool) -> torch.Tensor:
        """Forward and backward of one micro-batch (and FGM's second pass); its share of the
        batch loss, detached. Under torchrun, the earlier micro-batches of a step skip DDP's
        all-reduce (no_sync) unless FGM needs each one's all-reduced gradient."""
        cfg, fgm, c = self.cfg, self.fgm, self.c
        max_len = c.config.model.max_len
        inputs = collate(c.encoded, rows, c.pad_id, self.device, cfg.pad_multiple, max_len)
        targets = torch.as_tensor(c.labels[rows], device=self.device)
        before = fgm.weight.grad.clone() if fgm and fgm.weight.grad is not None else None
        with c.gradient_sync(last, fgm):
            loss = scale * self._loss_sum(self._forward(inputs), targets, epoch)
            loss.backward()
        if fgm is not None:
            own = fgm.weight.grad if before is None else fgm.weight.grad - before
            if fgm.attack(cfg.fgm_eps, grad=own):
                (scale * self._loss_sum(self._forward(inputs), targets, epoch)).backward()
                fgm.restore()
        return loss.detach()

    def gradients(self, batch: np.ndarray, epoch: int) -> tuple[torch.Tensor, StepCounts]:
        """Gradients of the batch's loss, from this rank's share in `grad_accum` micro-batches
        (the same count on every rank); returns this rank's share of the loss and what the step
        trained on. DDP averages the ranks' gradients, so each rank scales its share by the
        number of ranks."""
        cfg, c, world = self.cfg, self.c, self.dist.world
        used = batch[: len(batch) - len(batch) % world]  # what the ranks' equal shares cover
        mine = shard(batch, self.dist)
        loss = torch.zeros((), device=self.device)
        if len(used) == 0:  # fewer rows than ranks: no rank trains on this batch
            return loss, StepCounts(0, 0)
        total = c.batch_normaliser(used, epoch)
        micro_size = max(1, -(-len(mine) // cfg.grad_accum))
        for start in range(0, len(mine), micro_size):
            rows = mine[start : start + micro_size]
            last = start + micro_size >= len(mine)
            loss += self._micro_batch(rows, world / total, epoch, last)
        tokens = int(c.encoded.lengths[mine].sum()) * world
        return loss, StepCounts(len(used), tokens)

    def _all_finite(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> tuple[float, float, bool]:
        """(the loss, the gradient norm, whether both are finite on every rank): one host read."""
        flags = torch.stack([loss.float(), grad_norm.float()])
        if self.dist.world > 1:  # every rank makes the same skip decision; the batch's loss
            finite = torch.isfinite(flags).all().float()
            torch_dist.all_reduce(finite, op=torch_dist.ReduceOp.MIN)
            batch_loss = loss.float().clone()
            torch_dist.all_reduce(batch_loss)  # the ranks' shares add up to world x the loss
            flags = torch.cat([(batch_loss / self.dist.world).view(1), flags[1:], finite.view(1)])
        values = flags.tolist()
        finite = all(math.isfinite(v) for v in values[:2]) and (len(values) < 3 or values[2] == 1)
        return values[0], values[1], finite

    def run(self, batch: np.ndarray, epoch: int) -> StepCounts:
        """Gradients, clipping and the optimiser step; a non-finite loss or gradient norm skips
        the update (counted)."""
        c = self.c
        loss, counts = self.gradients(batch, epoch)
        grad_norm = torch.nn.utils.clip_grad_norm_(c.model.parameters(), self.cfg.max_grad_norm)
        self.last_loss, self.grad_norm, finite = self._all_finite(loss, grad_norm)
        if finite:
            c.optimizer.step()
            self.streak = 0
        else:
            self.skipped += 1
            self.streak += 1
        c.optimizer.zero_grad(set_to_none=True)
        return counts

    def read(self) -> StepReading:
        return StepReading(self.last_loss, self.grad_norm, self.streak, self.skipped)

    def restore_counts(self, streak: int, skipped: int) -> None:
        self.streak, self.skipped = streak, skipped
