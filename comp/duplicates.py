"""Duplicate rows: exact and near duplicates of the normalised text, as pairs and as groups.

Every text is first normalised (`comp.text.arabic_normalised`). Two rows are
- **exact** duplicates when their normalised question-and-answer texts are identical;
- **near** duplicates when the word sets of their normalised questions (both of at least
  `dedup.min_question_words` distinct words: short questions like "ما العلاج" repeat without
  being the same case) or of their whole normalised pairs have a Jaccard similarity of at least
  `dedup.threshold`.

Candidate pairs come from MinHash LSH (the `rensa` library) over the distinct texts of each view;
every candidate is then checked with the exact Jaccard similarity of its word sets, so the LSH
can miss a pair (with a probability under 1 - LSH_RECALL at the threshold, less above it) but
never adds one. Groups are the connected components of all pairs: a row that repeats one row of
a group belongs to it.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import polars as pl

from comp.config import DedupConfig
from comp.data import TrainData
from comp.text import arabic_normalised

EXACT, NEAR_PAIR, NEAR_QUESTION = 0, 1, 2  # the kinds of a pair, strongest first
KIND_NAMES = ("exact", "near pair", "near question")

LSH_RECALL = 0.98  # chance that LSH proposes a pair whose similarity is exactly the threshold
LSH_MAX_ROWS = 6  # hash values per band at most
LSH_MAX_PERM = 128  # hash functions at most (bands x rows per band)
LSH_SEED = 20261130
METHOD = "word-set jaccard; rensa minhash lsh candidates, exact check; v1"

STEPS = ("normalising", "exact duplicates", "near questions", "near pairs")


@dataclass(frozen=True)
class NormalisedRows:
    """The two normalised views of every row."""

    questions: list[str]
    answers: list[str]
    pairs: list[str]  # question and answer, joined by a space

    def __len__(self) -> int:
        return len(self.pairs)


@dataclass(frozen=True)
class DuplicatePairs:
    """Pairs of duplicate rows (first < second), each once, with its strongest kind. Rows that
    repeat the same text are linked in a star to the first of them, so a group of n identical
    rows holds n - 1 pairs: enough for the groups, which are what the reports count."""

    first: np.ndarray  # int64
    second: np.ndarray  # int64
    kind: np.ndarray  # int8: EXACT, NEAR_PAIR or NEAR_QUESTION
    similarity: np.ndarray  # float32 Jaccard of the view that matched (1 for exact)

    def __len__(self) -> int:
        return len(self.first)


def normalised_rows(questions: Sequence[str], answers: Sequence[str]) -> NormalisedRows:
    frame = pl.DataFrame(
        {"q": list(questions), "a": list(answers)}, schema={"q": pl.String, "a": pl.String}
    )
    q, a = arabic_normalised(pl.col("q")), arabic_normalised(pl.col("a"))
    normal = frame.select(q, a)  # polars normalises the two columns in parallel
    pair = pl.concat_str("q", "a", separator=" ").str.strip_chars(" ")
    normal = normal.with_columns(pair=pair)
    return NormalisedRows(normal["q"].to_list(), normal["a"].to_list(), normal["pair"].to_list())


def lsh_shape(threshold: float) -> tuple[int, int]:
    """(bands, rows per band): bands as long as possible (at most LSH_MAX_ROWS: the longer, the
    fewer unrelated pairs become candidates) with enough of them that a pair at the threshold is
    proposed with probability LSH_RECALL, within LSH_MAX_PERM hash functions."""
    for rows in range(LSH_MAX_ROWS, 0, -1):
        hit = threshold**rows
        if hit >= 1.0:
            return 1, rows
        bands = max(1, math.ceil(math.log(1 - LSH_RECALL) / math.log1p(-hit)))
        if bands * rows <= LSH_MAX_PERM:
            return bands, rows
    return LSH_MAX_PERM, 1


def _identical(texts: Sequence[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(representative of each row's text, the distinct texts' representatives), over `rows`; the
    representative of a text is its first row."""
    first: dict[str, int] = {}
    rep = np.array([first.setdefault(texts[r], int(r)) for r in rows], dtype=np.int64)
    return rep, np.fromiter(first.values(), dtype=np.int64, count=len(first))


def _star(rows: np.ndarray, rep: np.ndarray, kind: int) -> list[tuple]:
    linked = rows != rep
    a, b = rep[linked], rows[linked]
    return [(a, b, np.full(len(a), kind, np.int8), np.ones(len(a), np.float32))]


def _jaccard(a: list[str], b: list[str]) -> float:
    x, y = set(a), set(b)
    common = len(x & y)
    return common / (len(x) + len(y) - common)


def _near(words: list[list[str]], reps: np.ndarray, threshold: float, kind: int) -> list[tuple]:
    """Pairs of distinct texts (given by their representative rows and their words) whose word
    sets reach the threshold: LSH candidates, each checked exactly. A first pass over all texts
    only flags those that share a band with another; the candidates are then listed among the
    flagged few (the same pairs, without a candidate list for every text)."""
    import rensa

    if len(reps) < 2:
        return []
    bands, rows = lsh_shape(threshold)
    perm = bands * rows
    digests = rensa.RMinHash.digest_matrix_from_token_sets(words, perm, LSH_SEED)
    flags = rensa.RMinHashLSH(threshold, perm, bands).insert_matrix_and_query_duplicate_flags(
        digests
    )
    flagged = np.flatnonzero(np.asarray(flags, dtype=bool))
    hashes = rensa.RMinHash.from_token_sets([words[i] for i in flagged], perm, LSH_SEED)
    index = rensa.RMinHashLSH(threshold, perm, bands)
    index.insert_many(hashes, 0)
    found_a, found_b, found_s = [], [], []
    for i, candidates in enumerate(index.query_all(hashes)):
        a = flagged[i]
        for j in candidates:
            b = flagged[j]
            if b > a and (similarity := _jaccard(words[a], words[b])) >= threshold:
                found_a.append(a)
                found_b.append(b)
                found_s.append(similarity)
    a, b = reps[np.asarray(found_a, dtype=np.int64)], reps[np.asarray(found_b, dtype=np.int64)]
    return [(a, b, np.full(len(a), kind, np.int8), np.asarray(found_s, dtype=np.float32))]


def _collect(edges: list[tuple]) -> DuplicatePairs:
    """One pair per row pair, first < second, the strongest kind kept, sorted."""
    if not edges:
        empty = np.zeros(0, dtype=np.int64)
        return DuplicatePairs(empty, empty, empty.astype(np.int8), empty.astype(np.float32))
    a, b, kind, similarity = (np.concatenate(parts) for parts in zip(*edges, strict=True))
    first, second = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((kind, second, first))
    first, second, kind, similarity = first[order], second[order], kind[order], similarity[order]
    keep = np.ones(len(first), dtype=bool)
    keep[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
    return DuplicatePairs(first[keep], second[keep], kind[keep], similarity[keep])


def find_duplicates(
    rows: NormalisedRows,
    cfg: DedupConfig,
    on_step: Callable[[str], None] = lambda step: None,
) -> DuplicatePairs:
    """Every exact and near duplicate pair among `rows` (see the module's definitions).
    `on_step` is told when each of STEPS (after normalising) starts."""
    with _collector_paused():
        return _find(rows, cfg, on_step)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The word lists are millions of small objects without reference cycles; pausing the cycle
    collector while they are made saves about a third of the time spent here."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _find(rows: NormalisedRows, cfg: DedupConfig, on_step: Callable[[str], None]) -> DuplicatePairs:
    everyone = np.arange(len(rows), dtype=np.int64)
    on_step(STEPS[1])
    pair_rep, pair_reps = _identical(rows.pairs, everyone)
    edges = _star(everyone, pair_rep, EXACT)
    on_step(STEPS[2])
    question_words = [q.split() for q in rows.questions]
    long = everyone[[len(set(w)) >= cfg.min_question_words for w in question_words]]
    question_rep, question_reps = _identical(rows.questions, long)
    edges += _star(long, question_rep, NEAR_QUESTION)
    words = [question_words[r] for r in question_reps]
    edges += _near(words, question_reps, cfg.threshold, NEAR_QUESTION)
    on_step(STEPS[3])
    pair_reps = pair_reps[[bool(rows.pairs[r]) for r in pair_reps]]
    words = [question_words[r] + rows.answers[r].split() for r in pair_reps]
    edges += _near(words, pair_reps, cfg.threshold, NEAR_PAIR)
    return _collect(edges)


def duplicate_groups(n: int, pairs: DuplicatePairs) -> np.ndarray:
    """The group of each of n rows: connected components of the pairs, numbered by their first
    row (a row without duplicates is a group of its own)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs.first, pairs.second)), (n, n))
    _, component = connected_components(graph, directed=False)
    first_row = np.full(component.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first_row, component, np.arange(n))
    return np.unique(first_row, return_inverse=True)[1][component] if n else component


def grouping_settings(cfg: DedupConfig) -> dict:
    """What decides the groups, recorded with the folds so a change makes them stale."""
    bands, rows = lsh_shape(cfg.threshold)
    return {
        "threshold": cfg.threshold,
        "min_question_words": cfg.min_question_words,
        "method": METHOD,
        "lsh_bands": bands,
        "lsh_rows": rows,
        "lsh_seed": LSH_SEED,
    }


def row_groups(train: TrainData, cfg: DedupConfig) -> np.ndarray:
    """The duplicate group of every train row (see `duplicate_groups`)."""
    rows = normalised_rows(train.questions, train.answers)
    return duplicate_groups(len(rows), find_duplicates(rows, cfg))
