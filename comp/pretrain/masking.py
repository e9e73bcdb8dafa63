"""Masked-LM inputs for `comp pretrain`: which tokens a batch predicts, and what the model sees
in their place.

A word is masked whole where the tokenizer marks the pieces that continue a word (WordPiece's
`##`), else token by token. Each word is chosen with probability `rate`, so that share of the
tokens is predicted; of those, 80 % show [MASK], 10 % a random token and 10 % themselves (BERT).
The masks are a pure function of the random generator passed in: seeded from (seed, step), a
resumed pretraining replays an uninterrupted one exactly.

transformers' DataCollatorForLanguageModeling(whole_word_mask=True) finds words from the
offset mapping of the original text, which the token cache (pairs truncated as training builds
them) does not keep, and it drops the 10 % random replacement; hence this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from comp.errors import CompError

IGNORE = -100  # the label of a token that is not predicted (PyTorch's ignore_index)
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1


@dataclass(frozen=True)
class MaskSpec:
    rate: float
    mask_id: int
    special: np.ndarray  # bool per vocabulary id: never masked, never a random replacement
    continuation: np.ndarray | None  # bool per id: continues the word before; None = no words

    @property
    def whole_word(self) -> bool:
        return self.continuation is not None


def continuation_pieces(tokenizer) -> np.ndarray | None:
    """True for each vocabulary id that continues a word, or None when the tokenizer's model
    marks no such pieces (e.g. a byte-level BPE)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    prefix = getattr(getattr(backend, "model", None), "continuing_subword_prefix", None)
    if not prefix:
        return None
    flags = np.zeros(len(tokenizer), dtype=bool)
    for token, index in tokenizer.get_vocab().items():
        if token.startswith(prefix) and len(token) > len(prefix) and index < len(flags):
            flags[index] = True
    return flags


def mask_spec(tokenizer, rate: float, whole_word: bool) -> MaskSpec:
    if tokenizer.mask_token_id is None:
        raise CompError(
            "pretrain.backbone: its tokenizer has no [MASK] token, so it cannot be pretrained "
            "with masked LM; choose a BERT-style backbone"
        )
    special = np.zeros(len(tokenizer), dtype=bool)
    special[[i for i in tokenizer.all_special_ids if i < len(special)]] = True
    continuation = continuation_pieces(tokenizer) if whole_word else None
    return MaskSpec(rate, tokenizer.mask_token_id, special, continuation)


def _word_starts(ids: np.ndarray, maskable: np.ndarray, spec: MaskSpec) -> np.ndarray:
    """Where a word begins: a maskable token that is no continuation piece, or that follows no
    maskable token (a `##` piece right after [CLS] or [SEP] starts a word of its own)."""
    if not spec.whole_word:
        return maskable
    follows = np.zeros_like(maskable)
    follows[:, 1:] = maskable[:, :-1]
    return maskable & (~spec.continuation[ids] | ~follows)


def mask_tokens(
    ids: np.ndarray, attention: np.ndarray, spec: MaskSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of a padded batch of token ids [B, T]: labels hold the original id where
    a token is predicted and IGNORE elsewhere. Padding and special tokens are never chosen; a
    batch with any maskable token predicts at least one word."""
    maskable = (attention == 1) & ~spec.special[ids]
    starts = _word_starts(ids, maskable, spec)
    word = np.cumsum(starts.ravel()).reshape(ids.shape) - 1  # word index of every token
    chosen = rng.random(int(starts.sum())) < spec.rate
    if not chosen.any() and chosen.size:
        chosen[rng.integers(chosen.size)] = True
    masked = maskable & chosen[np.maximum(word, 0)]
    draw = rng.random(ids.shape)
    inputs = ids.copy()
    inputs[masked & (draw < MASK_SHARE)] = spec.mask_id
    randomised = masked & (draw >= MASK_SHARE) & (draw < MASK_SHARE + RANDOM_SHARE)
    ordinary = np.flatnonzero(~spec.special)
    inputs[randomised] = ordinary[rng.integers(len(ordinary), size=int(randomised.sum()))]
    labels = np.where(masked, ids, IGNORE)
    return inputs, labels
