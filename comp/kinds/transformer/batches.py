"""The training data order and the model inputs of a batch of rows."""

from __future__ import annotations

import numpy as np
import torch

from comp.kinds.transformer.encoding import length_bucketed_batches, pad_batch
from comp.kinds.transformer.token_cache import EncodedTexts


def collate(
    encoded: EncodedTexts,
    rows,
    pad_id: int,
    device: torch.device,
    multiple: int = 1,
    limit: int = 0,
) -> dict:
    """The model inputs of `rows`, padded (see `pad_batch` for `multiple` and `limit`)."""
    rows = list(rows)
    ids, types = zip(*(encoded.row(i) for i in rows), strict=True)
    input_ids, mask = pad_batch([x.tolist() for x in ids], pad_id, multiple, limit)
    token_types, _ = pad_batch([x.tolist() for x in types], 0, multiple, limit)
    tensors = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_types}
    if device.type == "cuda":  # pinned + non_blocking: the copy does not wait for the GPU
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in tensors.items()}
    return {k: v.to(device) for k, v in tensors.items()}


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, fold: int, epoch: int):
    """The batches of one epoch, a pure function of (seed, fold, epoch): resuming at any step
    replays exactly the data order of an uninterrupted run."""
    rng = np.random.default_rng([seed, fold, epoch])
    return length_bucketed_batches(lengths, batch_size, rng)
