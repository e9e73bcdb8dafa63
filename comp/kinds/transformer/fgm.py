"""FGM (Miyato et al. 2017) on the word-embedding matrix.

Usage in the training loop::

    loss.backward()
    if fgm.attack(eps):              # weights += eps * g / ||g||_2
        adv_loss = compute_loss(model(batch))
        adv_loss.backward()          # gradients of the two passes add up
        fgm.restore()                # exact weights back
    clip_grad_norm_(...); optimizer.step()   # clip after restore

The norm is one L2 norm over the whole embedding-matrix gradient (as in common FGM code). With
gradient accumulation, `.grad` at attack time also holds the earlier micro-batches of the step;
pass `grad=` (this micro-batch's own gradient: `.grad` now minus `.grad` before its backward) to
attack along the current micro-batch alone, as the training loop does.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class FGM:
    """Perturb `model.get_input_embeddings().weight` along its gradient and restore it exactly."""

    def __init__(self, model: nn.Module) -> None:
        self.weight: nn.Parameter = model.get_input_embeddings().weight
        self.backup: torch.Tensor | None = None

    @torch.no_grad()
    def attack(self, eps: float = 0.2, grad: torch.Tensor | None = None) -> bool:
        """Add eps * g / ||g||_2 to the embedding weights, g = `grad` or the weights' `.grad`;
        False (nothing done) when the gradient is missing, zero or not finite."""
        if self.backup is not None:
            raise RuntimeError("FGM.attack called twice without restore()")
        grad = self.weight.grad if grad is None else grad
        if grad is None:
            return False
        if grad.is_sparse:
            grad = grad.to_dense()
        norm = torch.linalg.vector_norm(grad.float()).item()
        if norm == 0.0 or not math.isfinite(norm):
            return False
        self.backup = self.weight.detach().clone()
        self.weight.add_(grad.float().mul(eps / norm).to(self.weight.dtype))
        return True

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the backed-up weights back bit for bit and free the backup; no-op after a skip."""
        if self.backup is None:
            return
        self.weight.copy_(self.backup)
        self.backup = None


class RowFGM:
    """FGM as the sync-free step needs it: no host read (the step scale is eps / ||g|| where the
    norm is finite and positive, else 0, on the device) and only the embedding rows the
    micro-batch's token ids touch are perturbed and restored (the gradient is zero elsewhere).
    It attacks along the micro-batch's own gradient, like `FGM.attack(grad=...)`.

    The ids may repeat (a token used twice); each row's squared norm is counted once, and a
    repeated row is written with the same value each time, so the result does not depend on
    which copy wins. Under torchrun (`world` > 1) the gradient is DDP's all-reduced one, which is
    not zero on rows only another rank's ids touch: the norm is then taken over every rank's
    rows, each once (the row counts and the squared norm are summed across ranks), so every rank
    steps eps / ||g|| as one process with the whole batch does, still without a host read."""

    def __init__(self, model: nn.Module, world: int = 1) -> None:
        self.weight: nn.Parameter = model.get_input_embeddings().weight
        self.counts = torch.zeros(self.weight.shape[0], device=self.weight.device)
        self.backup: torch.Tensor | None = None
        self.world = world

    @torch.no_grad()
    def gradient_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """The embedding gradient's rows of `ids` now (zeros where there is no gradient yet)."""
        if self.weight.grad is None:
            return torch.zeros(len(ids), self.weight.shape[1], device=self.weight.device)
        return self.weight.grad[ids].float()

    @torch.no_grad()
    def attack(self, ids: torch.Tensor, before: torch.Tensor, eps: float) -> torch.Tensor:
        """Move the rows of `ids` by eps * g / ||g||, g = their gradient now minus `before`;
        returns 1.0 if it moved them, 0.0 if the norm was 0 or not finite (a device tensor)."""
        own = self.gradient_rows(ids) - before
        self.counts.zero_().index_add_(0, ids, torch.ones_like(ids, dtype=self.counts.dtype))
        if self.world > 1:  # every rank's uses of each row
            torch.distributed.all_reduce(self.counts)
        squares = ((own * own).sum(dim=1) / self.counts[ids]).sum()
        if self.world > 1:  # the rows of every rank, each once
            torch.distributed.all_reduce(squares)
        norm = squares.sqrt()
        attacked = torch.isfinite(norm) & (norm > 0)
        scale = torch.where(attacked, eps / norm, 0.0)
        self.backup = self.weight[ids].clone()
        moved = (self.backup.float() + own * scale).to(self.weight.dtype)
        self.weight.index_put_((ids,), moved)
        return attacked.float()

    @torch.no_grad()
    def restore(self, ids: torch.Tensor) -> None:
        """Copy the backed-up rows back bit for bit."""
        if self.backup is None:
            raise RuntimeError("RowFGM.restore called without attack()")
        self.weight.index_put_((ids,), self.backup)
        self.backup = None
