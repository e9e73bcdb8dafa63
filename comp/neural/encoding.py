"""Token-level encoding: question/answer pairs with head-tail truncation, length-bucketed batches
and dynamic padding. Pure functions over token ids; the tokenizer lives elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

MIN_MAX_LEN = 4  # 3 special tokens ([CLS] q [SEP] a [SEP]) + at least one content token


class EncodedPair(NamedTuple):
    input_ids: list[int]
    token_type_ids: list[int]


def truncation_budget(
    question_len: int, answer_len: int, max_len: int, answer_min_tokens: int
) -> tuple[int, int, int]:
    """How many tokens of a pair survive: (kept question, answer head, answer tail).

    room = max_len - 3. If both fit, nothing is cut. Otherwise the answer is reserved
    min(answer_min_tokens, answer_len) tokens (capped at room, so with a tiny max_len the
    question may get nothing); the question keeps its head up to the rest of the room; the answer
    gets whatever room the question left. An answer longer than its room keeps its first
    room_a - room_a // 2 and its last room_a // 2 tokens (the head gets the odd token).
    """
    if max_len < MIN_MAX_LEN:
        raise ValueError(f"max_len must be >= {MIN_MAX_LEN} (3 special tokens + 1), got {max_len}")
    if answer_min_tokens < 0:
        raise ValueError(f"answer_min_tokens must be >= 0, got {answer_min_tokens}")
    room = max_len - 3
    if question_len + answer_len <= room:
        return question_len, answer_len, 0
    reserve = min(answer_min_tokens, answer_len, room)
    q_keep = min(question_len, room - reserve)
    room_a = room - q_keep
    if answer_len <= room_a:
        return q_keep, answer_len, 0
    return q_keep, room_a - room_a // 2, room_a // 2


def pair_input_ids(
    question_ids: Sequence[int],
    answer_ids: Sequence[int],
    max_len: int,
    answer_min_tokens: int,
    cls_id: int,
    sep_id: int,
) -> EncodedPair:
    """`[CLS] q [SEP] a [SEP]` with head-tail truncation to at most max_len tokens.

    token_type_ids are 0 for `[CLS] q [SEP]` and 1 for `a [SEP]`. A row with no answer (empty
    answer_ids) is one segment, `[CLS] q [SEP]` (no empty second segment), all type 0, with the
    question cut from the end to max_len - 2 tokens.
    """
    q, a = list(question_ids), list(answer_ids)
    if max_len < MIN_MAX_LEN:
        raise ValueError(f"max_len must be >= {MIN_MAX_LEN} (3 special tokens + 1), got {max_len}")
    if not a:
        first = [cls_id, *q[: max_len - 2], sep_id]
        return EncodedPair(first, [0] * len(first))
    q_keep, head, tail = truncation_budget(len(q), len(a), max_len, answer_min_tokens)
    # a[len(a) - tail:] rather than a[-tail:], which would keep everything when tail == 0.
    a_kept = a[:head] + a[len(a) - tail :]
    first = [cls_id, *q[:q_keep], sep_id]
    second = [*a_kept, sep_id]
    return EncodedPair(first + second, [0] * len(first) + [1] * len(second))


def length_bucketed_batches(
    lengths: Sequence[int],
    batch_size: int,
    rng: np.random.Generator,
    chunk_multiplier: int = 50,
) -> list[list[int]]:
    """Batches of indices whose members have similar lengths, in random order.

    Shuffle all indices, cut them into chunks of batch_size * chunk_multiplier, sort each chunk by
    length (stable), cut each chunk into batches, then shuffle the batch order. Every index appears
    exactly once; only the last chunk can end with a short batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if chunk_multiplier < 1:
        raise ValueError(f"chunk_multiplier must be >= 1, got {chunk_multiplier}")
    lens = np.asarray(lengths, dtype=np.int64)
    order = rng.permutation(len(lens))
    chunk = batch_size * chunk_multiplier
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lens[part], kind="stable")]
        for b in range(0, len(part), batch_size):
            batches.append([int(i) for i in part[b : b + batch_size]])
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]


def padded_width(longest: int, multiple: int = 1, limit: int = 0) -> int:
    """`longest` rounded up to a multiple of `multiple`, but not past `limit` (the model's
    max_len) unless the longest sequence is longer: padding never truncates."""
    width = -(-longest // multiple) * multiple
    return min(width, max(limit, longest)) if limit else width


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, multiple: int = 1, limit: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence in the batch: (ids, attention_mask), both int64 (B, T).

    `multiple` rounds T up to a multiple of it, but not past `limit` (the model's max_len) unless
    a sequence is longer: few distinct shapes let a GPU reuse its cached kernels and memory.
    Pad token_type_ids with pad_id=0 the same way.
    """
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    width = padded_width(max(len(s) for s in sequences), multiple, limit)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[row, : len(seq)] = 1
    return ids, mask
