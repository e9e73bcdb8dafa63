"""Macro-F1 as Kaggle and scikit-learn compute it, vectorised with numpy."""

from __future__ import annotations

import numpy as np


def class_counts(
    y_true: np.ndarray, y_pred: np.ndarray, num_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, predicted, true) per class 0..num_labels-1."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    tp = np.bincount(y_true[y_true == y_pred], minlength=num_labels)
    return tp, np.bincount(y_pred, minlength=num_labels), np.bincount(y_true, minlength=num_labels)


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """F1 of each class 0..num_labels-1 (0 where the class is neither true nor predicted)."""
    tp, predicted, true = class_counts(y_true, y_pred, num_labels)
    denominator = predicted + true
    return np.divide(2 * tp, denominator, out=np.zeros(num_labels), where=denominator > 0)


def macro_f1_from_counts(tp: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> float:
    """Mean F1 over the classes that are true or predicted at least once (scikit-learn's
    default), from per-class counts: cheap to re-evaluate on sums of per-fold counts."""
    denominator = predicted + true
    present = denominator > 0
    if not present.any():
        return 0.0
    return float((2 * tp[present] / denominator[present]).mean())


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> float:
    """Mean F1 over the classes that occur in y_true or y_pred (scikit-learn's default)."""
    return macro_f1_from_counts(*class_counts(y_true, y_pred, num_labels))
