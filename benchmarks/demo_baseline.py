"""Difficulty check of the demo competition: TF-IDF + logistic regression, 5-fold OOF.

Usage: .venv/bin/python benchmarks/demo_baseline.py [--scale 1.0] [--seed 42]
The generator is tuned so that the overall OOF macro-F1 lands in 0.30-0.60 (published systems on
the real task score 0.31-0.51) and the confusable classes score clearly lower than the others.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier

from comp.demo.categories import CONFUSABLE_GROUPS, LABEL_BY_ENGLISH, NUM_CLASSES
from comp.demo.generator import ANSWER_MARKER, QUESTION_MARKER, generate_demo

_QUESTION_RE = re.compile(rf"^\s*{QUESTION_MARKER}[ \t]*\n-*\n?")
_ANSWER_RE = re.compile(rf"\n[ \t]*{ANSWER_MARKER}[ \t]*\n-*\n?")


def split_qa(text: str) -> tuple[str, str]:
    text = text.replace("\r\n", "\n")
    text = _QUESTION_RE.sub("", text, count=1)
    parts = _ANSWER_RE.split(text, maxsplit=1)
    return parts[0].strip(), (parts[1].strip() if len(parts) > 1 else "")


def featurise(train_texts: list[str], valid_texts: list[str]) -> tuple[csr_matrix, csr_matrix]:
    # Word 1-2 grams only: adding char_wb 3-5 grams (11M non-zeros) cost ~190 s a fold on 2 cores
    # for +0.005 macro-F1, which would break the few-minutes budget of this check.
    word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=200_000)
    x_train, x_valid = word.fit_transform(train_texts), word.transform(valid_texts)
    x_train.sort_indices()  # joblib memory-maps it read-only for the workers
    x_valid.sort_indices()
    return x_train, x_valid


def make_model() -> OneVsRestClassifier:
    # One-vs-rest liblinear: ~10 s a fold, where multinomial lbfgs takes over two minutes.
    lr = LogisticRegression(solver="liblinear", C=4.0, class_weight="balanced")
    return OneVsRestClassifier(lr, n_jobs=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    demo = generate_demo(scale=args.scale, seed=args.seed)
    print(f"generated {demo.train.height} train rows in {time.perf_counter() - start:.1f}s")
    texts = demo.train["text"].to_list()
    y = demo.train["label"].to_numpy()

    oof = np.zeros_like(y)
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=42)
    for fold, (tr, va) in enumerate(folds.split(texts, y)):
        x_tr, x_va = featurise([texts[i] for i in tr], [texts[i] for i in va])
        model = make_model()
        model.fit(x_tr, y[tr])
        oof[va] = model.predict(x_va)
        print(f"fold {fold}: macro-F1 {f1_score(y[va], oof[va], average='macro'):.4f}")

    per_class = f1_score(y, oof, labels=np.arange(NUM_CLASSES), average=None, zero_division=0)
    confusable = np.zeros(NUM_CLASSES, dtype=bool)
    confusable[[LABEL_BY_ENGLISH[name] for group in CONFUSABLE_GROUPS for name in group]] = True
    questions, answers = zip(*(split_qa(t) for t in texts), strict=True)
    q_len = np.array([len(q) for q in questions])
    a_len = np.array([len(a) for a in answers])

    print(f"OOF macro-F1: {f1_score(y, oof, average='macro'):.4f}")
    print(f"OOF accuracy: {(oof == y).mean():.4f}")
    print(f"mean F1, confusable classes ({confusable.sum()}): {per_class[confusable].mean():.4f}")
    print(f"mean F1, other classes ({(~confusable).sum()}): {per_class[~confusable].mean():.4f}")
    print(f"question length mean: {q_len.mean():.1f} chars (median {np.median(q_len):.0f})")
    print(f"answer length mean: {a_len.mean():.1f} chars (median {np.median(a_len):.0f})")
    print(f"rows over 3000 chars: {((q_len + a_len) > 3000).mean():.2%}")
    print(f"total time: {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
