"""Tokenise question/answer pairs once per run and cache the token ids on disk.

The fast tokenizer is called on whole lists (Rust, batched); the pair assembly with head-tail
truncation is `encoding.pair_input_ids`. The cache key covers the tokenizer's full
definition, the texts and the truncation settings, so a stale cache is never reused.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from comp.io import atomic_path
from comp.neural.encoding import pair_input_ids

TOKENIZE_CHUNK = 4096


@dataclass(frozen=True)
class EncodedTexts:
    """Ragged token ids of n rows, stored flat: row i is ids[offsets[i]:offsets[i+1]]."""

    ids: np.ndarray  # int32
    type_ids: np.ndarray  # int8
    offsets: np.ndarray  # int64, n + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.ids[start:end], self.type_ids[start:end]


def _tokenize(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    out: list[list[int]] = []
    for start in range(0, len(texts), TOKENIZE_CHUNK):
        chunk = list(texts[start : start + TOKENIZE_CHUNK])
        out.extend(tokenizer(chunk, add_special_tokens=False)["input_ids"])
    return out


def encode_pairs(
    tokenizer,
    questions: Sequence[str],
    answers: Sequence[str],
    max_len: int,
    answer_min_tokens: int,
) -> EncodedTexts:
    question_ids = _tokenize(tokenizer, questions)
    answer_ids = _tokenize(tokenizer, answers)
    ids, types, offsets = [], [], [0]
    for q, a in zip(question_ids, answer_ids, strict=True):
        pair = pair_input_ids(
            q, a, max_len, answer_min_tokens, tokenizer.cls_token_id, tokenizer.sep_token_id
        )
        ids.extend(pair.input_ids)
        types.extend(pair.token_type_ids)
        offsets.append(len(ids))
    return EncodedTexts(
        np.asarray(ids, dtype=np.int32),
        np.asarray(types, dtype=np.int8),
        np.asarray(offsets, dtype=np.int64),
    )


def tokenizer_fingerprint(tokenizer) -> str:
    backend = tokenizer.backend_tokenizer.to_str()
    return hashlib.sha256(backend.encode("utf-8")).hexdigest()


def pairs_key(settings: object, questions: Sequence[str], answers: Sequence[str]) -> str:
    """A cache key for question/answer pairs processed with `settings` (JSON-able)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for q, a in zip(questions, answers, strict=True):
        digest.update(q.encode("utf-8") + b"\x00" + a.encode("utf-8") + b"\x01")
    return digest.hexdigest()[:24]


def _cache_key(fingerprint: str, questions, answers, max_len: int, answer_min_tokens: int) -> str:
    return pairs_key([fingerprint, max_len, answer_min_tokens], questions, answers)


def encode_cached(
    tokenizer,
    questions: Sequence[str],
    answers: Sequence[str],
    max_len: int,
    answer_min_tokens: int,
    cache_dir: Path,
    fingerprint: str | None = None,
) -> EncodedTexts:
    """encode_pairs, reusing `cache_dir/<key>.npz` when the same inputs were encoded before."""
    fingerprint = fingerprint or tokenizer_fingerprint(tokenizer)
    key = _cache_key(fingerprint, questions, answers, max_len, answer_min_tokens)
    path = Path(cache_dir) / f"{key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return EncodedTexts(cached["ids"], cached["type_ids"], cached["offsets"])
    encoded = encode_pairs(tokenizer, questions, answers, max_len, answer_min_tokens)
    buffer = io.BytesIO()
    np.savez(buffer, ids=encoded.ids, type_ids=encoded.type_ids, offsets=encoded.offsets)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return encoded
