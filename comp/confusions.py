"""Find groups of confusable classes in out-of-fold predictions, for margin boosting.

The seed paper chose the classes to margin-boost (`train.boost_classes`) by hand. Here they come
from the ensemble's OOF predictions: every class pair gets a symmetric confusion rate, pairs that
are confused often enough (and on enough rows) are kept, and the groups are the connected
components of the kept pairs.

The pair rate is the larger of the two directed confusion rates,

    r_ij = max(C[i, j] / n_i, C[j, i] / n_j)     (C: confusion counts, n: true rows per class)

that is, the share of one class's rows that the model gives to the other. The pooled rate
(C[i, j] + C[j, i]) / (n_i + n_j) is dominated by the larger class: a rare class wholly absorbed
by a big neighbour (7 of 7 rows) scores 7 / 187 = 0.04 against 180 rows, although that is the
case margin boosting exists for. The max form sees it at 1.0; its noise on tiny classes (2 of 10
rows going anywhere) is what `min_rows`, the evidence floor C[i, j] + C[j, i], is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from comp.config import Config
from comp.ensemble import read_chosen_logits
from comp.errors import CompError
from comp.folds import label_names
from comp.io import write_text_atomically
from comp.layout import OOF, ensemble_dir

DEFAULT_THRESHOLD = 0.1  # >= 10% of one class's rows predicted as the other
DEFAULT_MIN_ROWS = 5  # rows confused between the two classes, both directions together
LARGE_GROUP = 8  # a group larger than this is worth a warning (a hub class, or a low threshold)
FRAGMENT_NAME = "boost_classes.yaml"


class ConfusionsError(CompError):
    pass


@dataclass(frozen=True)
class ConfusablePair:
    a: int
    b: int  # a < b
    rate: float  # max(C[a, b] / n_a, C[b, a] / n_b)
    a_to_b: int  # rows of class a predicted as b
    b_to_a: int

    @property
    def rows(self) -> int:
        return self.a_to_b + self.b_to_a


@dataclass(frozen=True)
class ConfusableGroup:
    classes: tuple[int, ...]  # sorted ids
    pairs: tuple[ConfusablePair, ...]  # the kept pairs that join the group, strongest first
    rows: int  # rows of a member predicted as another member
    rate: float  # rows / true rows of the members: the group's strength
    error_share: dict[int, float]  # per member: share of its errors predicted as another member


def confusion_matrix(y: np.ndarray, pred: np.ndarray, num_labels: int) -> np.ndarray:
    """Counts [true class, predicted class], shape (num_labels, num_labels)."""
    y, pred = _check_labels(y, pred, num_labels)
    flat = np.bincount(y * num_labels + pred, minlength=num_labels * num_labels)
    return flat.reshape(num_labels, num_labels)


def _check_labels(y, pred, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    y, pred = np.asarray(y), np.asarray(pred)
    if y.shape != pred.shape or y.ndim != 1:
        raise ConfusionsError(f"labels {y.shape} and predictions {pred.shape} differ in shape")
    for name, values in (("labels", y), ("predictions", pred)):
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise ConfusionsError(f"{name} must be integer class ids, got {values.dtype}")
        if values.size and (values.min() < 0 or values.max() >= num_labels):
            raise ConfusionsError(f"{name} must be in 0..{num_labels - 1}")
    return y.astype(np.int64), pred.astype(np.int64)


def pair_rates(counts: np.ndarray) -> np.ndarray:
    """Symmetric [C, C] matrix of r_ij = max(C[i, j] / n_i, C[j, i] / n_j); 0 on the diagonal."""
    n = counts.sum(axis=1).astype(np.float64)
    directed = counts / np.maximum(n, 1)[:, None]
    np.fill_diagonal(directed, 0.0)
    return np.maximum(directed, directed.T)


def _components(num_labels: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components (of size >= 2) of the graph, by union-find."""
    parent = list(range(num_labels))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for i in sorted({i for edge in edges for i in edge}):
        members.setdefault(root(i), []).append(i)
    return [sorted(group) for group in members.values()]


def find_confusable_groups(
    y: np.ndarray,
    pred: np.ndarray,
    num_labels: int,
    threshold: float = DEFAULT_THRESHOLD,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> list[ConfusableGroup]:
    """Groups of classes joined by pairs with rate >= threshold and >= min_rows confused rows
    (both directions together), strongest group (highest within-group confusion rate) first."""
    if not 0 < threshold <= 1:
        raise ConfusionsError(f"threshold must be in (0, 1], got {threshold}")
    if min_rows < 1:
        raise ConfusionsError(f"min_rows must be at least 1, got {min_rows}")
    counts = confusion_matrix(y, pred, num_labels)
    rates = pair_rates(counts)
    both = counts + counts.T
    a_idx, b_idx = np.triu_indices(num_labels, 1)
    keep = (rates[a_idx, b_idx] >= threshold) & (both[a_idx, b_idx] >= min_rows)
    pairs = [
        ConfusablePair(int(a), int(b), float(rates[a, b]), int(counts[a, b]), int(counts[b, a]))
        for a, b in zip(a_idx[keep], b_idx[keep], strict=True)
    ]
    groups = [
        _group(classes, pairs, counts)
        for classes in _components(num_labels, [(p.a, p.b) for p in pairs])
    ]
    return sorted(groups, key=lambda g: (-g.rate, -g.rows, g.classes))


def _group(classes: list[int], pairs: list[ConfusablePair], counts: np.ndarray) -> ConfusableGroup:
    inside = counts[np.ix_(classes, classes)].copy()
    np.fill_diagonal(inside, 0)
    n = counts[classes].sum(axis=1)
    errors = n - np.diag(counts)[classes]
    to_group = inside.sum(axis=1)
    share = {c: float(to_group[k] / errors[k]) if errors[k] else 0.0 for k, c in enumerate(classes)}
    members = set(classes)
    own = sorted((p for p in pairs if p.a in members), key=lambda p: (-p.rate, -p.rows, p.a, p.b))
    rows = int(inside.sum())
    return ConfusableGroup(tuple(classes), tuple(own), rows, rows / max(int(n.sum()), 1), share)


def boost_classes(groups: list[ConfusableGroup]) -> list[int]:
    return sorted({c for group in groups for c in group.classes})


# ---------------------------------------------------------------------------------------------
# The command


def load_oof_predictions(config: Config, name: str) -> tuple[Path, np.ndarray, np.ndarray, str]:
    """(oof.parquet path, true labels, predicted labels, logits column used) of an ensemble."""
    parquet, frame, column = read_chosen_logits(
        ensemble_dir(config, name), OOF, ["label"], config.data.num_labels
    )
    pred = frame[column].to_numpy().reshape(len(frame), -1).argmax(axis=1)
    return parquet, frame["label"].to_numpy(), pred, column


def fragment_text(classes: list[int], header: list[str]) -> str:
    """A config layer that sets train.boost_classes, with `header` as comment lines."""
    lines = [f"# {' '.join(line.splitlines())}".rstrip() for line in header]
    ids = ", ".join(str(c) for c in classes)
    return "\n".join([*lines, "train:", f"  boost_classes: [{ids}]", ""])


def _describe(group: ConfusableGroup, names: list[str]) -> str:
    return ", ".join(f"{names[c]} ({c})" for c in group.classes)


def print_groups(
    groups: list[ConfusableGroup], names: list[str], console: Console, title: str
) -> None:
    table = Table(title=title)
    table.add_column("group", justify="right")
    table.add_column("classes (share of their errors inside the group)")
    table.add_column("pair rates (rows a→b / b→a)")
    table.add_column("rows", justify="right")
    table.add_column("rate", justify="right")
    for number, group in enumerate(groups, start=1):
        classes = "\n".join(
            f"{escape(names[c])} ({c}) {group.error_share[c]:.0%}" for c in group.classes
        )
        pairs = "\n".join(f"{p.a}–{p.b}: {p.rate:.2f} ({p.a_to_b}/{p.b_to_a})" for p in group.pairs)
        table.add_row(str(number), classes, pairs, str(group.rows), f"{group.rate:.2f}")
    console.print(table)


def confusions_command(
    config: Config,
    ensemble_name: str | None,
    threshold: float,
    min_rows: int,
    out: Path | None,
    console: Console,
) -> list[ConfusableGroup]:
    """Find confusable groups in an ensemble's OOF predictions, print them and write a config
    fragment setting train.boost_classes (default runs/ensembles/<name>/boost_classes.yaml)."""
    name = ensemble_name or config.ensemble.name
    c = config.data.num_labels
    parquet, y, pred, column = load_oof_predictions(config, name)
    groups = find_confusable_groups(y, pred, c, threshold, min_rows)
    names = label_names(config)
    classes = boost_classes(groups)

    title = (
        f"confusable groups in {parquet} ({len(y):,} rows, argmax of {column}; "
        f"pair rate >= {threshold:g}, >= {min_rows} rows)"
    )
    if groups:
        print_groups(groups, names, console, escape(title))
    else:
        console.print(f"{escape(title)}: none found; the fragment sets no boost classes")
    for group in groups:
        if len(group.classes) > LARGE_GROUP:
            console.print(
                f"[yellow]warning[/]: a group of {len(group.classes)} classes "
                f"({escape(_describe(group, names))}); a higher --threshold may split it"
            )

    target = Path(out) if out is not None else parquet.parent / FRAGMENT_NAME
    header = [
        f"train.boost_classes found by `comp confusions` in {parquet}",
        f"(argmax of {column}, {len(y)} OOF rows; pair rate >= {threshold:g}, "
        f"confused rows >= {min_rows}).",
        "Layer it on top of a config: --config <base.yaml> --config <this file>.",
        *(
            f"group {i}: {_describe(g, names)}; within-group rate {g.rate:.2f}"
            for i, g in enumerate(groups, start=1)
        ),
    ]
    write_text_atomically(target, fragment_text(classes, header))
    console.print(f"wrote {escape(str(target))}: train.boost_classes = {classes}")
    return groups
