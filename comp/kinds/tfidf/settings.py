"""The TF-IDF kind's settings and file names (light: read by the kind's face and its model)."""

from __future__ import annotations

from dataclasses import dataclass

from comp.config import Config

MODEL_FILE = "tfidf_model.npz"
OLD_MODEL_FILE = "tfidf_model.pkl"  # comp before 2026-12 pickled the model: never unpickled


@dataclass
class TfidfConfig:
    """model.kind: tfidf, a fast classical model trained in the same fold frame."""

    word_ngram_max: int = 2  # word n-grams 1..word_ngram_max
    char_ngram_min: int = 0  # character n-grams (char_wb) min..max; 0 turns them off
    char_ngram_max: int = 0  # (see char_ngram_min)
    min_df: int = 2  # n-grams in fewer training rows are dropped
    max_features: int = 200_000  # per analyzer
    sublinear_tf: bool = True  # 1 + log(tf) instead of tf
    classifier: str = "logreg"  # logreg | svm (LinearSVC, scores used as logits)
    c: float = 0.5  # inverse regularisation strength (tuned on the full-size demo)
    class_weight: str = "balanced"  # balanced | none
    seed: int = 42  # liblinear's shuffling of the rows


def checks(config: Config) -> list[tuple[bool, str]]:
    t = config.tfidf
    return [
        (t.classifier in ("logreg", "svm"), "tfidf.classifier must be logreg or svm"),
        (t.class_weight in ("balanced", "none"), "tfidf.class_weight: balanced or none"),
        (t.word_ngram_max >= 1, "tfidf.word_ngram_max must be at least 1"),
        (t.min_df >= 1 and t.max_features >= 1, "tfidf.min_df and max_features: at least 1"),
        (t.c > 0, "tfidf.c must be positive"),
    ]
