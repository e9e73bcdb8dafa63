"""Macro-F1 as Kaggle and scikit-learn compute it, vectorised with numpy."""

from __future__ import annotations

import numpy as np


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """F1 of each class 0..num_labels-1 (0 where the class is neither true nor predicted)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    tp = np.bincount(y_true[y_true == y_pred], minlength=num_labels)
    denominator = np.bincount(y_true, minlength=num_labels) + np.bincount(
        y_pred, minlength=num_labels
    )
    return np.divide(2 * tp, denominator, out=np.zeros(num_labels), where=denominator > 0)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> float:
    """Mean F1 over the classes that occur in y_true or y_pred (scikit-learn's default)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = (
        np.bincount(y_true, minlength=num_labels) + np.bincount(y_pred, minlength=num_labels)
    ) > 0
    if not present.any():
        return 0.0
    return float(per_class_f1(y_true, y_pred, num_labels)[present].mean())
