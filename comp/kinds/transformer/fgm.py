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
