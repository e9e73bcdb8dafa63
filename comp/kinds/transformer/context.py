"""What a training step works with (`StepContext`), handed over by the fold's trainer so that the
steps (`step.py`, `eager_step.py`) see exactly this and nothing else of it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from comp.config import Config, TrainConfig
from comp.kinds.transformer.losses import uses_drw_weights
from comp.neural.distributed import Dist
from comp.neural.token_cache import EncodedTexts


@dataclass(frozen=True)
class StepContext:
    config: Config
    encoded: EncodedTexts  # every train row's token ids
    labels: np.ndarray  # every train row's label
    pad_id: int
    model: torch.nn.Module  # the classifier: its parameters and word embeddings
    net: torch.nn.Module  # what the passes go through: the model, DDP-wrapped or compiled
    optimizer: torch.optim.Optimizer
    margins: torch.Tensor  # LDAM's per-class margins, on the device
    weights: torch.Tensor  # DRW's per-class weights, on the device
    row_weight: np.ndarray  # the same weights on the host, for a batch's normaliser
    device: torch.device
    dist: Dist

    @property
    def cfg(self) -> TrainConfig:
        return self.config.train

    def gradient_sync(self, last: bool, fgm: object | None):
        """DDP's gradient all-reduce for a micro-batch's backward: skipped (no_sync) on the
        earlier micro-batches of a step, whose gradients the last one's all-reduce carries, but
        not with FGM, whose attack needs each micro-batch's all-reduced gradient."""
        skip = self.dist.world > 1 and not last and fgm is None
        return self.net.no_sync() if skip else contextlib.nullcontext()

    def batch_normaliser(self, batch: np.ndarray, epoch: int) -> float:
        """What the summed loss of the whole batch is divided by: its row count, or in the DRW
        phase the sum of its rows' class weights (PyTorch's weighted mean). Computed from the
        unsplit batch by every process, so micro-batches and ranks weigh rows as one batch."""
        if uses_drw_weights(self.cfg.loss, epoch, self.cfg.drw_start_epoch):
            return float(self.row_weight[self.labels[batch]].sum())
        return float(len(batch))


@dataclass(frozen=True)
class StepCounts:
    """What one step trained on, all ranks together."""

    rows: int
    tokens: int
