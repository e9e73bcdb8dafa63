"""Temperature scaling: one scalar that puts a model's logits on a calibrated scale."""

from __future__ import annotations

import numpy as np

TEMPERATURE_RANGE = (0.05, 20.0)  # for ensembles: a best T outside is clamped to the edge


def fit_temperature(
    logits: np.ndarray,
    y: np.ndarray,
    bounds: tuple[float, float] = TEMPERATURE_RANGE,
    iterations: int = 50,
) -> float:
    """The T within `bounds` that minimises the mean log-loss of softmax(logits / T) on rows
    with labels y.

    Damped Newton on beta = 1/T: the loss is convex in beta, with gradient mean(E_p[z] - z_y) and
    curvature mean(Var_p[z]); steps are kept inside the range and halved while they do not lower
    the loss. The search stops where the loss is flat: separable logits (best T -> 0) stop at a
    small T, logits that point away from the labels at the upper edge.
    Models' logits come on different scales (TF-IDF's are squeezed, a transformer's are often
    over-confident); dividing each by its T puts them on one scale before they are averaged.
    """
    z = np.asarray(logits, dtype=np.float64)
    if len(z) == 0 or len(z) != len(y):
        raise ValueError(f"fit_temperature: {len(z)} rows of logits but {len(y)} labels")
    if not np.isfinite(z).all():
        raise ValueError("fit_temperature: the logits hold NaN or infinite values")
    z_true = z[np.arange(len(y)), y]
    low, high = 1.0 / bounds[1], 1.0 / bounds[0]

    def loss_and_derivatives(beta: float) -> tuple[float, float, float]:
        scaled = beta * z
        top = scaled.max(axis=1, keepdims=True)
        p = np.exp(scaled - top)
        total = p.sum(axis=1, keepdims=True)
        p /= total
        mean_z = (p * z).sum(axis=1)
        loss = float(np.mean(top[:, 0] + np.log(total[:, 0]) - beta * z_true))
        gradient = float(np.mean(mean_z - z_true))
        curvature = float(np.mean((p * z * z).sum(axis=1) - mean_z**2))
        return loss, gradient, curvature

    beta = 1.0
    loss, gradient, curvature = loss_and_derivatives(beta)
    for _ in range(iterations):
        if curvature <= 1e-12 * max(1.0, float(np.mean(z * z))):
            break  # the loss is flat in beta (constant logits): any T does
        target = float(np.clip(beta - gradient / curvature, low, high))
        while True:  # backtrack until the loss does not rise
            new = loss_and_derivatives(target)
            if new[0] <= loss + 1e-12 or abs(target - beta) < 1e-9 * beta:
                break
            target = (beta + target) / 2
        moved = abs(target - beta)
        beta, (loss, gradient, curvature) = target, new
        if moved < 1e-7 * beta:
            break
    return float(1.0 / beta)
