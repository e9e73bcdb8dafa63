"""Duplicates planted in the demo competition, as the real corpus has them: questions posted
again (some filed under another category), the same question with spelling slips, and a few test
rows whose twin is in train.

A copy takes the place of a generated row (its class keeps its row count and its own label), so
a copy from another class is a label conflict. Its kind says how it differs from its source:

- `exact`: byte for byte the same text;
- `variant`: the same words re-rendered (other punctuation, line breaks, dash lines and question
  marks) with a few diacritics, tatweel and alef / taa marbuta / alef maqsura forms changed:
  identical once normalised (`comp.text.normalise_arabic`);
- `near`: as `variant`, plus one or more misspelt words (a letter swapped, dropped or doubled):
  a near duplicate.

Planting draws from a random stream of its own, so every row that is not a copy is the same as
without planting.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EXACT_RATE = 0.015  # train rows that are byte-for-byte copies of another train row
VARIANT_RATE = 0.015  # train rows that equal another once normalised
NEAR_RATE = 0.015  # train rows that are near copies of another
TWIN_RATE = 0.005  # test rows copied from a train row, a third of each kind
OTHER_LABEL_RATE = 0.15  # copies whose source is a row of another class
TYPO_RATE = 0.03  # near copies: each word misspelt with this chance (at least one)
PLANT_STREAM = 20261130  # the planting's own random stream, beside the demo's seed

KINDS = ("exact", "variant", "near")
_DIACRITICS = "\u064e\u064f\u0650\u0651\u0652"  # fatha, damma, kasra, shadda, sukun
_FORMS = {"ا": "أ", "ه": "ة", "ي": "ى"}  # written back to the plain form by the normalisation


@dataclass(frozen=True)
class Planted:
    """Every copy, by row in generation order (before train and test are shuffled)."""

    copy: np.ndarray  # int64: the row that was overwritten
    source: np.ndarray  # int64: the train row it repeats
    kind: np.ndarray  # object: one of KINDS


@dataclass(frozen=True)
class RowTokens:
    """The word ids each generated row was rendered from."""

    tokens: np.ndarray  # flat, rows laid out as q0 a0 q1 a1 ...
    q_len: np.ndarray
    a_len: np.ndarray
    typo: np.ndarray  # (base words, 2): the generator's misspellings of each base word

    def rows(self, index: np.ndarray) -> list[np.ndarray]:
        ends = np.cumsum(self.q_len + self.a_len)
        return [self.tokens[ends[i] - self.q_len[i] - self.a_len[i] : ends[i]] for i in index]


Render = Callable[[np.random.Generator, np.ndarray, np.ndarray, np.ndarray], list[str]]


def _sources(rng, copies, labels, is_train, group_of, taken) -> np.ndarray:
    """A train row to copy for each copy: of the copy's own class, or (OTHER_LABEL_RATE) of a
    class of its confusable group (any other class if it has none); never a copy itself."""
    pool = np.flatnonzero(is_train & ~taken)
    by_class = {c: pool[labels[pool] == c] for c in np.unique(labels)}
    sources = np.empty(len(copies), dtype=np.int64)
    for n, row in enumerate(copies):
        own = labels[row]
        target = own
        if rng.random() < OTHER_LABEL_RATE:
            group = np.flatnonzero((group_of == group_of[own]) & (group_of >= 0))
            others = group[group != own] if len(group) > 1 else np.arange(len(group_of))
            others = others[others != own]
            target = int(rng.choice(others))
        candidates = by_class.get(target, np.zeros(0, dtype=np.int64))
        candidates = candidates[candidates != row]
        sources[n] = rng.choice(candidates) if len(candidates) else -1
    return sources


def _normalisable_edits(
    rng: np.random.Generator, text: str, edits: int, markers: tuple[str, ...]
) -> str:
    """Add diacritics and tatweel, and write a few letters in a form the normalisation undoes
    (never inside a question or answer marker)."""
    chars = list(text)
    protected = {
        i
        for marker in markers
        for m in re.finditer(re.escape(marker), text)
        for i in range(*m.span())
    }
    letters = [i for i, ch in enumerate(chars) if "\u0621" <= ch <= "\u064a" and i not in protected]
    for i in rng.choice(letters, min(edits, len(letters)), replace=False) if letters else []:
        ch = chars[i]
        roll = rng.random()
        if ch in _FORMS and roll < 0.5:
            chars[i] = _FORMS[ch]
        elif roll < 0.8:
            chars[i] = ch + _DIACRITICS[int(rng.integers(len(_DIACRITICS)))]
        elif ch not in "اأإآدذرزوؤءة":  # letters that do not join to the left take no tatweel
            chars[i] = ch + "ـ"
    return "".join(chars)


def _misspell(rng: np.random.Generator, words: np.ndarray, typo: np.ndarray) -> np.ndarray:
    words = words.copy()
    base = np.flatnonzero(words < len(typo))
    if not len(base):
        return words
    hit = base[rng.random(len(base)) < TYPO_RATE]
    if not len(hit):
        hit = rng.choice(base, 1)
    words[hit] = typo[words[hit], 1]
    return words


def _copies(rng, rows: np.ndarray, rate: float, taken: np.ndarray) -> np.ndarray:
    free = rows[~taken[rows]]
    chosen = rng.choice(free, min(len(free), round(rate * len(rows))), replace=False)
    taken[chosen] = True
    return np.sort(chosen)


def plant_duplicates(
    seed: int,
    texts: np.ndarray,
    words: RowTokens,
    labels: np.ndarray,
    is_train: np.ndarray,
    group_of: np.ndarray,
    render: Render,
    markers: tuple[str, ...],
) -> Planted:
    """Overwrite some rows of `texts` (in place) with copies of train rows; see the module."""
    rng = np.random.default_rng([seed, PLANT_STREAM])
    taken = np.zeros(len(texts), dtype=bool)
    train, test = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    copies = [_copies(rng, train, rate, taken) for rate in (EXACT_RATE, VARIANT_RATE, NEAR_RATE)]
    twins = _copies(rng, test, TWIN_RATE, taken)
    twin_kind = rng.integers(0, len(KINDS), len(twins))
    copies = [np.concatenate([c, twins[twin_kind == k]]) for k, c in enumerate(copies)]
    out_copy, out_source, out_kind = [], [], []
    for kind, rows in zip(KINDS, copies, strict=True):
        sources = _sources(rng, rows, labels, is_train, group_of, taken)
        rows, sources = rows[sources >= 0], sources[sources >= 0]
        if kind == "exact":
            texts[rows] = texts[sources]
        else:
            chosen = words.rows(sources)
            if kind == "near":
                chosen = [_misspell(rng, w, words.typo) for w in chosen]
            flat = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
            rendered = render(rng, flat, words.q_len[sources], words.a_len[sources])
            edits = rng.integers(1, 4, len(rows))
            texts[rows] = [
                _normalisable_edits(rng, t, int(e), markers)
                for t, e in zip(rendered, edits, strict=True)
            ]
        out_copy.append(rows)
        out_source.append(sources)
        out_kind.append(np.full(len(rows), kind, dtype=object))
    return Planted(np.concatenate(out_copy), np.concatenate(out_source), np.concatenate(out_kind))
