"""The training data order, and the model inputs of a batch of rows built with array indexing
(no Python loop over rows: about 0.2 ms a batch where a per-row loop took about 3.6 ms)."""

from __future__ import annotations

import numpy as np
import torch

from comp.neural.encoding import length_bucketed_batches, padded_width
from comp.neural.token_cache import EncodedTexts


def gather_rows(
    encoded: EncodedTexts, rows, pad_id: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input ids, token type ids, lengths) of `rows`, right-padded to `width`: int64 arrays
    [B, width], [B, width] and [B]. Pad positions hold `pad_id` and token type 0."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, lengths = encoded.offsets[rows], encoded.lengths[rows]
    positions = np.arange(width)
    inside = positions[None, :] < lengths[:, None]
    index = np.where(inside, starts[:, None] + positions[None, :], 0)
    ids = np.where(inside, encoded.ids[index], pad_id).astype(np.int64)
    types = np.where(inside, encoded.type_ids[index], 0).astype(np.int64)
    return ids, types, lengths.astype(np.int64)


def batch_width(encoded: EncodedTexts, rows, multiple: int = 1, limit: int = 0) -> int:
    return padded_width(int(encoded.lengths[np.asarray(rows)].max()), multiple, limit)


def collate(
    encoded: EncodedTexts,
    rows,
    pad_id: int,
    device: torch.device,
    multiple: int = 1,
    limit: int = 0,
) -> dict:
    """The model inputs of `rows` (input_ids, attention_mask, token_type_ids), padded to the
    longest row rounded up to `multiple`, but not past `limit` (see `padded_width`)."""
    width = batch_width(encoded, rows, multiple, limit)
    ids, types, lengths = gather_rows(encoded, rows, pad_id, width)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    if device.type == "cuda":  # pinned + non_blocking: the copy does not wait for the GPU
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in tensors.items()}
    return {k: v.to(device) for k, v in tensors.items()}


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, fold: int, epoch: int):
    """The batches of one epoch, a pure function of (seed, fold, epoch): resuming at any step
    replays exactly the data order of an uninterrupted run."""
    rng = np.random.default_rng([seed, fold, epoch])
    return length_bucketed_batches(lengths, batch_size, rng)
