"""LDAM margins, DRW class weights, the LDAM loss and the recipe's CE -> LDAM-DRW switch.

Formulas (the seed paper; Cao et al. 2019 for DRW): Δ_y = C / n_y^(1/4) subtracted from the
true-class logit only; w_c = (1 - β) / (1 - β^n_c) normalised to sum to K. Counts are clamped
to >= 1 so that a class with no rows in a fold gives finite margins and weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F


def _counts(class_counts: Sequence[float] | torch.Tensor) -> torch.Tensor:
    counts = torch.as_tensor(class_counts, dtype=torch.float64).flatten()
    if counts.numel() == 0:
        raise ValueError("class_counts is empty")
    if torch.isnan(counts).any() or (counts < 0).any():
        raise ValueError("class_counts must be non-negative numbers")
    return counts.clamp(min=1.0)


def ldam_margins(
    class_counts: Sequence[float] | torch.Tensor,
    C: float = 1.0,
    max_m: float | None = None,
    boost_classes: Iterable[int] = (),
    boost_factor: float = 10.0,
) -> torch.Tensor:
    """Per-class margins Δ_y = C / n_y^(1/4), float32, shape (K,).

    Counts are clamped to >= 1 first; a boosted class then uses n_y / boost_factor (not clamped
    again, so every boosted margin grows by boost_factor^(1/4)). With max_m, margins are rescaled
    so the largest equals max_m and C is ignored (Cao et al.: m = 1/n^(1/4); m *= max_m / max(m)).
    """
    counts = _counts(class_counts)
    if boost_factor <= 0:
        raise ValueError(f"boost_factor must be > 0, got {boost_factor}")
    boost = sorted({int(c) for c in boost_classes})
    if boost and (boost[0] < 0 or boost[-1] >= counts.numel()):
        raise ValueError(f"boost_classes must lie in 0..{counts.numel() - 1}, got {boost}")
    counts[boost] = counts[boost] / boost_factor
    m = counts.pow(-0.25)
    m = m * (max_m / m.max()) if max_m is not None else C * m
    return m.to(torch.float32)


def drw_class_weights(
    class_counts: Sequence[float] | torch.Tensor, beta: float = 0.9999
) -> torch.Tensor:
    """Effective-number weights (1 - β) / (1 - β^n_c), summing to K; float32, shape (K,).

    Pass the real counts: margin boosting never applies here.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    counts = _counts(class_counts)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    w = w * (counts.numel() / w.sum())
    return w.to(torch.float32)


def ldam_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    margins: torch.Tensor,
    weight: torch.Tensor | None = None,
    s: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of s * (logits - Δ_y on the true class only), mean over the batch.

    With weight, this is PyTorch's weighted mean: sum_i w_{y_i} * l_i / sum_i w_{y_i}, i.e. it
    divides by the sum of the targets' weights, not by the batch size. reduction="sum" gives
    sum_i w_{y_i} * l_i: the training loop divides that by the weight sum of the whole batch,
    so that splitting a batch (micro-batches, ranks) does not change the weighting.
    """
    margins = margins.to(device=logits.device, dtype=logits.dtype)
    shifted = (
        logits - F.one_hot(targets, logits.shape[-1]).to(logits.dtype) * margins[targets, None]
    )
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=logits.dtype)
    return F.cross_entropy(s * shifted, targets, weight=weight, reduction=reduction)


def recipe_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    epoch: int,
    *,
    drw_start_epoch: int,
    margins: torch.Tensor,
    weights: torch.Tensor | None,
    s: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """The paper's schedule: plain CE while epoch < drw_start_epoch (0-based epochs, so epochs
    0..drw_start_epoch-1), then LDAM with DRW class weights.

    s scales the logits in both phases: it belongs to the head (a cosine head needs it from the
    start); with the default s = 1 the first phase is exactly plain cross-entropy.
    """
    if epoch < drw_start_epoch:
        return F.cross_entropy(s * logits, targets, reduction=reduction)
    return ldam_loss(logits, targets, margins, weight=weights, s=s, reduction=reduction)


def uses_drw_weights(loss: str, epoch: int, drw_start_epoch: int) -> bool:
    """Whether the recipe's loss weighs rows by their class at this epoch (its DRW phase)."""
    return loss == "ldam_drw" and epoch >= drw_start_epoch


def recipe_loss_sum(
    logits: torch.Tensor,
    targets: torch.Tensor,
    drw: torch.Tensor,
    margins: torch.Tensor,
    weights: torch.Tensor,
    s: float = 1.0,
) -> torch.Tensor:
    """`recipe_loss(..., reduction="sum")` with the phase as a device flag instead of an epoch:
    `drw` (a 0-dim tensor) 0 gives exactly plain CE summed over the rows, 1 gives LDAM with DRW
    weights, sum_i w_{y_i} * l_i. A row with target -100 counts for nothing (it pads a short
    micro-batch to the shape of the others). No host read and no data-dependent shape, so it
    can sit inside a CUDA graph and switch phase without a new capture."""
    on = drw > 0
    real = targets >= 0
    safe = torch.where(real, targets, 0)
    margin = torch.where(on, margins[safe], 0.0)  # subtracting 0.0 leaves a logit unchanged
    classes = torch.arange(logits.shape[-1], device=logits.device)
    true_class = (classes[None, :] == safe[:, None]).to(logits.dtype)
    shifted = logits - true_class * margin[:, None].to(logits.dtype)
    per_row = F.cross_entropy(s * shifted, targets, reduction="none")  # 0 where -100
    return (torch.where(on, weights[safe], 1.0).to(per_row.dtype) * per_row).sum()
