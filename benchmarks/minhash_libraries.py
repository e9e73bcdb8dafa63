"""MinHash LSH with rensa (what comp uses) against datasketch (the reference Python library), on
the full-size demo competition's normalised question-and-answer texts (train and both test
sets): the signatures, the index and one query per text, with the same number of hash
functions and bands (`comp.duplicates.lsh_shape` at the default threshold). Then, on the train
rows of the demo at scale 0.2 (5,590 rows), each library's recall: the share of the pairs whose
exact word-set Jaccard similarity (every pair computed) reaches the threshold that LSH proposes.

datasketch is not one of comp's dependencies: `pip install datasketch` first (the script says so
and stops if it is missing).

    python benchmarks/minhash_libraries.py
"""

from __future__ import annotations

import os
import time

from comp.config import DedupConfig
from comp.demo.generator import generate_demo
from comp.duplicates import LSH_SEED, lsh_shape, normalised_rows
from comp.text import split_qa


def timed(label: str, run) -> set[tuple[int, int]]:
    started = time.perf_counter()
    candidates = run()
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.2f} s, {len(candidates):,} candidate pairs")
    return candidates


def with_rensa(words: list[list[str]], threshold: float, bands: int, rows: int) -> set:
    import rensa

    hashes = rensa.RMinHash.from_token_sets(words, bands * rows, LSH_SEED)
    index = rensa.RMinHashLSH(threshold, bands * rows, bands)
    index.insert_many(hashes, 0)
    return {(i, j) for i, c in enumerate(index.query_all(hashes)) for j in c if i < j}


def with_datasketch(words: list[list[str]], threshold: float, bands: int, rows: int) -> set:
    from datasketch import MinHash, MinHashLSH

    encoded = [[w.encode("utf-8") for w in ws] for ws in words]
    hashes = MinHash.bulk(encoded, num_perm=bands * rows, seed=LSH_SEED % 2**32)
    index = MinHashLSH(threshold=threshold, num_perm=bands * rows, params=(bands, rows))
    with index.insertion_session() as session:
        for key, minhash in enumerate(hashes):
            session.insert(key, minhash, check_duplication=False)
    return {(i, j) for i, m in enumerate(hashes) for j in index.query(m) if i < j}


def exact_pairs(words: list[list[str]], threshold: float) -> set[tuple[int, int]]:
    """Every pair of distinct texts whose word sets reach the threshold (all pairs computed)."""
    import numpy as np
    import scipy.sparse as sp

    sets = [set(w) for w in words]
    vocabulary = {w: i for i, w in enumerate(sorted(set().union(*sets)))}
    indices = [vocabulary[w] for s in sets for w in s]
    pointers = np.cumsum([0] + [len(s) for s in sets])
    x = sp.csr_matrix((np.ones(len(indices)), indices, pointers), (len(sets), len(vocabulary)))
    common = sp.triu(x @ x.T, k=1).tocoo()
    sizes = np.array([len(s) for s in sets])
    jaccard = common.data / (sizes[common.row] + sizes[common.col] - common.data)
    keep = jaccard >= threshold
    return set(zip(common.row[keep].tolist(), common.col[keep].tolist(), strict=True))


def distinct_words(scale: float | None) -> list[list[str]]:
    """The word lists of the distinct normalised pair texts of the demo (train rows only at a
    given scale; every file at full size when scale is None)."""
    demo = generate_demo(scale=scale or 1.0)
    texts = list(demo.train["text"])
    if scale is None:
        texts += [*demo.test_public["text"], *demo.test_private["text"]]
    pairs = [split_qa(t, "السؤال", "الجواب") for t in texts]
    rows = normalised_rows([q for q, _ in pairs], [a for _, a in pairs])
    return [text.split() for text in dict.fromkeys(rows.pairs) if text]


def main() -> None:
    try:
        import datasketch  # noqa: F401
    except ImportError:
        raise SystemExit("pip install datasketch first (it is not a dependency of comp)") from None
    threshold = DedupConfig().threshold
    bands, per_band = lsh_shape(threshold)
    words = distinct_words(None)
    print(
        f"full size: {len(words):,} distinct texts, {bands} bands x {per_band} = "
        f"{bands * per_band} hash functions; load average {load()}"
    )
    for name, run in (("rensa", with_rensa), ("datasketch", with_datasketch)):
        timed(name, lambda run=run: run(words, threshold, bands, per_band))
    words = distinct_words(0.2)
    truth = exact_pairs(words, threshold)
    print(f"scale 0.2: {len(words):,} distinct texts, {len(truth)} pairs at or above {threshold}")
    for name, run in (("rensa", with_rensa), ("datasketch", with_datasketch)):
        candidates = run(words, threshold, bands, per_band)
        recall = len(truth & candidates) / len(truth)
        print(f"{name}: recall {recall:.4f}, {len(candidates):,} candidates")
    print(f"load average {load()}")


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
