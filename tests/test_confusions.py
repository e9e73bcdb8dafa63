import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from comp.config import Config
from comp.confusions import (
    ConfusionsError,
    confusion_matrix,
    confusions_command,
    find_confusable_groups,
    pair_rates,
)
from comp.demo.categories import CONFUSABLE_GROUPS, LABEL_BY_ENGLISH
from comp.ensemble import EnsembleError
from comp.errors import CompError
from comp.folds import folds_paths
from comp.kinds import default_config, load_config

DEMO_YAML = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def from_matrix(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions whose confusion matrix is `counts`, rows shuffled."""
    c = len(counts)
    flat = np.repeat(np.arange(c * c), counts.ravel())
    order = np.random.default_rng(0).permutation(len(flat))
    return flat[order] // c, flat[order] % c


def hand_made() -> np.ndarray:
    """0-1 confused both ways, 2-3-4 a chain through 3, 5 a tiny class absorbed by 0."""
    m = np.zeros((6, 6), dtype=np.int64)
    m[0, 1], m[1, 0] = 20, 18  # rate max(0.20, 0.18) = 0.20, 38 rows
    m[2, 3] = 15  # 0.15, 15 rows
    m[4, 3] = 12  # 0.12, 12 rows
    m[0, 4] = 3  # 0.03: noise
    m[5, 0] = 4  # 4 of 4 rows: rate 1.0 on 4 rows (pooled with class 0: 4 / 104)
    for i in range(5):
        m[i, i] = 100 - m[i].sum()
    return m


def classes(groups) -> list[tuple[int, ...]]:
    return [g.classes for g in groups]


# ---------------------------------------------------------------------------------------------
# Hand-made confusion matrices


def test_confusion_matrix_counts_every_cell():
    m = hand_made()
    m[3, 1] = 7  # an asymmetric cell, so a transposed matrix would not pass
    y, pred = from_matrix(m)
    assert np.array_equal(confusion_matrix(y, pred, 6), m)
    assert confusion_matrix(y, pred, 8).shape == (8, 8)


def test_pair_rates_are_the_larger_directed_rate():
    rates = pair_rates(hand_made())
    assert np.allclose(rates, rates.T)
    assert np.all(np.diag(rates) == 0)
    assert rates[0, 1] == pytest.approx(0.20)
    assert rates[3, 4] == pytest.approx(0.12)
    assert rates[0, 5] == pytest.approx(1.0)  # the tiny class's view, not 4 / 104
    assert rates[1, 2] == 0


def test_groups_are_connected_components_of_kept_pairs():
    y, pred = from_matrix(hand_made())
    groups = find_confusable_groups(y, pred, 6)  # defaults: 0.1, 5 rows
    assert classes(groups) == [(0, 1), (2, 3, 4)]
    first, second = groups
    assert [(p.a, p.b, p.a_to_b, p.b_to_a) for p in first.pairs] == [(0, 1, 20, 18)]
    assert first.pairs[0].rate == pytest.approx(0.20)
    assert first.rows == 38 and first.rate == pytest.approx(38 / 200)
    assert first.error_share == pytest.approx({0: 20 / 23, 1: 1.0})
    assert [(p.a, p.b, p.rows) for p in second.pairs] == [(2, 3, 15), (3, 4, 12)]
    assert second.rows == 27 and second.rate == pytest.approx(27 / 300)
    assert second.error_share == pytest.approx({2: 1.0, 3: 0.0, 4: 1.0})


def test_threshold_is_inclusive_and_cuts_weak_pairs():
    y, pred = from_matrix(hand_made())
    assert classes(find_confusable_groups(y, pred, 6, threshold=0.12)) == [(0, 1), (2, 3, 4)]
    assert classes(find_confusable_groups(y, pred, 6, threshold=0.13)) == [(0, 1), (2, 3)]
    assert classes(find_confusable_groups(y, pred, 6, threshold=0.16)) == [(0, 1)]
    assert find_confusable_groups(y, pred, 6, threshold=0.21) == []
    # a low threshold lets the 3-row noise pair in only once min_rows allows it
    assert classes(find_confusable_groups(y, pred, 6, threshold=0.01, min_rows=3)) == [
        (0, 1, 2, 3, 4, 5)
    ]


def test_min_rows_guards_small_classes():
    y, pred = from_matrix(hand_made())
    # the absorbed 4-row class needs min_rows <= 4 (its pooled rate, 0.04, would never pass)
    assert classes(find_confusable_groups(y, pred, 6, min_rows=4)) == [(0, 1, 5), (2, 3, 4)]
    joined = find_confusable_groups(y, pred, 6, min_rows=4)[0]
    assert joined.rows == 42 and joined.error_share[5] == 1.0
    assert classes(find_confusable_groups(y, pred, 6, min_rows=13)) == [(0, 1), (2, 3)]
    assert classes(find_confusable_groups(y, pred, 6, min_rows=38)) == [(0, 1)]
    assert find_confusable_groups(y, pred, 6, min_rows=39) == []


def test_groups_sorted_by_strength():
    m = np.zeros((4, 4), dtype=np.int64)
    m[0, 1] = 10  # group (0, 1): 10 / 200
    m[2, 3], m[3, 2] = 30, 30  # group (2, 3): 60 / 200
    np.fill_diagonal(m, 100 - m.sum(axis=1))
    y, pred = from_matrix(m)
    assert classes(find_confusable_groups(y, pred, 4)) == [(2, 3), (0, 1)]


def test_perfect_predictions_have_no_groups():
    y = np.arange(50) % 5
    assert find_confusable_groups(y, y.copy(), 5) == []


@pytest.mark.parametrize(
    "y, pred, kwargs",
    [
        ([0, 1, 2], [0, 1], {}),
        ([0, 1, 5], [0, 1, 2], {}),
        ([0, 1, 2], [0, -1, 2], {}),
        ([0.0, 1.0], [0, 1], {}),
        ([0, 1], [0, 1], {"threshold": 0.0}),
        ([0, 1], [0, 1], {"threshold": 1.5}),
        ([0, 1], [0, 1], {"min_rows": 0}),
    ],
)
def test_bad_input_is_an_error(y, pred, kwargs):
    with pytest.raises(ConfusionsError):
        find_confusable_groups(np.asarray(y), np.asarray(pred), 3, **kwargs)


# ---------------------------------------------------------------------------------------------
# The demo competition, where the confusable groups are known by construction


@pytest.fixture(scope="module")
def demo_oof() -> tuple[np.ndarray, np.ndarray]:
    """OOF predictions of a quick TF-IDF + linear SVM over 5 stratified folds (about 8,500
    rows; some 7 s on 2 CPU cores). LinearSVC is liblinear's one-vs-rest linear model: this
    scikit-learn no longer fits multiclass LogisticRegression with liblinear."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.svm import LinearSVC

    from comp.demo.generator import generate_demo

    train = generate_demo(scale=0.3, seed=1).train
    x = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(
        train["text"].to_list()
    )
    y = train["label"].to_numpy()
    pred = cross_val_predict(
        LinearSVC(C=0.5), x, y, cv=StratifiedKFold(5, shuffle=True, random_state=1)
    )
    return y, pred


def known_group_of() -> dict[int, int]:
    return {
        LABEL_BY_ENGLISH[name]: g for g, names in enumerate(CONFUSABLE_GROUPS) for name in names
    }


def test_demo_recovers_the_papers_groups(demo_oof):
    groups = find_confusable_groups(*demo_oof, 82)

    def together(*names: str) -> bool:
        ids = {LABEL_BY_ENGLISH[name] for name in names}
        return any(ids <= set(g.classes) for g in groups)

    assert together("Dental Diseases", "Dental Health", "Dentistry")
    assert {13, 14, 15} <= set(next(g for g in groups if 13 in g.classes).classes)
    assert together("Child Health", "Pediatrics")
    assert together("Psychiatric Disorders", "Mental Health", "Psychology")


def test_demo_pairs_are_precise_and_groups_do_not_merge(demo_oof):
    groups = find_confusable_groups(*demo_oof, 82)
    known = known_group_of()
    pairs = [p for g in groups for p in g.pairs]
    inside = [p.a in known and known.get(p.a) == known.get(p.b) for p in pairs]
    assert len(pairs) >= 30
    assert np.mean(inside) >= 0.9  # precision over found pairs
    for group in groups:  # no component spans two known groups, none is a giant
        assert len({known[c] for c in group.classes if c in known}) == 1
        assert len(group.classes) <= 6


def test_demo_recall_over_the_big_groups(demo_oof):
    y, pred = demo_oof
    groups = find_confusable_groups(y, pred, 82)
    rows = np.bincount(y, minlength=82)
    recovered = 0
    for names in CONFUSABLE_GROUPS:
        big = {LABEL_BY_ENGLISH[n] for n in names if rows[LABEL_BY_ENGLISH[n]] >= 40}
        if any(big <= set(g.classes) for g in groups):
            recovered += 1
    assert recovered >= 12  # of 14 known groups: every member with >= 40 rows found together
    known = known_group_of()
    # class-level recall: a known-group class with >= 20 rows sits beside a known partner
    # (40 such classes; small ones like Hormones and Vitamins and Minerals count here)
    medium = [c for c in known if rows[c] >= 20]
    found = [
        c
        for c in medium
        for g in groups
        if c in g.classes and any(known.get(o) == known[c] for o in g.classes if o != c)
    ]
    assert len(found) >= 0.95 * len(medium)
    members = {c for g in groups for c in g.classes}
    assert len(members - set(known)) <= 2  # few classes outside every known group


# ---------------------------------------------------------------------------------------------
# The command


NAMES = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"]


def command_config(root: Path) -> Config:
    config = default_config()
    config.data.num_labels = 6
    config.train.runs_dir = str(root / "runs")
    config.folds.dir, config.folds.name = str(root / "folds"), "t"
    config.ensemble.name = "ens"
    return config


def fake_ensemble(
    config: Config,
    raw_pred: np.ndarray,
    adjusted_pred: np.ndarray,
    y: np.ndarray,
    apply: bool,
    name: str = "ens",
    names: list[str] | None = NAMES,
) -> Path:
    """An ensemble folder as `comp ensemble` writes it, with one-hot-ish logits."""
    c = config.data.num_labels
    out = Path(config.train.runs_dir) / "ensembles" / name
    out.mkdir(parents=True, exist_ok=True)

    def logits(pred):
        z = np.random.default_rng(1).normal(0, 0.1, (len(pred), c)).astype(np.float32)
        z[np.arange(len(pred)), pred] += 5
        return z

    pl.DataFrame(
        {"row": np.arange(len(y)), "label": y, "fold": np.arange(len(y)) % 2}
    ).with_columns(
        pl.Series("logits", logits(raw_pred), dtype=pl.Array(pl.Float32, c)),
        pl.Series("logits_adjusted", logits(adjusted_pred), dtype=pl.Array(pl.Float32, c)),
    ).write_parquet(out / "oof.parquet")
    (out / "metrics.json").write_text(json.dumps({"apply_adjustment": apply}))
    if names is not None:
        json_path = folds_paths(config)[1]
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"k": 2, "label_names": names}), encoding="utf-8")
    return out


def console() -> Console:
    return Console(record=True, width=200)


@pytest.mark.parametrize("apply", [True, False])
def test_command_uses_the_column_the_ensemble_applied(tmp_path, apply):
    config = command_config(tmp_path)
    y, confused = from_matrix(hand_made())
    # the applied column carries the confusions, the other one is perfect
    raw, adjusted = (y, confused) if apply else (confused, y)
    out = fake_ensemble(config, raw, adjusted, y, apply)
    groups = confusions_command(config, None, 0.1, 5, None, console())
    assert classes(groups) == [(0, 1), (2, 3, 4)]
    fragment = (out / "boost_classes.yaml").read_text(encoding="utf-8")
    assert "train:\n  boost_classes: [0, 1, 2, 3, 4]\n" in fragment
    assert ("logits_adjusted" in fragment) == apply


def test_fragment_layers_on_a_base_config(tmp_path):
    config = command_config(tmp_path)
    y, pred = from_matrix(hand_made())
    out = fake_ensemble(config, pred, y, y, apply=False)
    confusions_command(config, None, 0.1, 4, None, console())
    fragment = out / "boost_classes.yaml"
    assert fragment.read_text(encoding="utf-8").startswith("# ")
    layered = load_config([DEMO_YAML, fragment])
    assert layered.train.boost_classes == [0, 1, 2, 3, 4, 5]
    assert layered.folds.name == "demo" and layered.data.num_labels == 82  # the base is kept
    base = tmp_path / "base.yaml"
    base.write_text("data:\n  num_labels: 6\ntrain:\n  boost_classes: [3]\n  boost_factor: 5\n")
    layered = load_config([base, fragment])
    assert layered.train.boost_classes == [0, 1, 2, 3, 4, 5]  # replaced, not merged
    assert layered.train.boost_factor == 5


def test_no_groups_writes_an_empty_list(tmp_path):
    config = command_config(tmp_path)
    y, _ = from_matrix(hand_made())
    out = fake_ensemble(config, y, y, y, apply=True)
    assert confusions_command(config, None, 0.1, 5, None, console()) == []
    fragment = out / "boost_classes.yaml"
    assert load_config([DEMO_YAML, fragment]).train.boost_classes == []


def test_table_names_classes_and_out_path(tmp_path):
    config = command_config(tmp_path)
    y, pred = from_matrix(hand_made())
    out = fake_ensemble(config, pred, y, y, apply=False, name="other")
    target = tmp_path / "configs" / "boost.yaml"
    rec = console()
    confusions_command(config, "other", 0.1, 5, target, rec)
    text = rec.export_text()
    assert "Alpha (0)" in text and "Epsilon (4)" in text and "Zeta" not in text
    assert "0–1: 0.20 (20/18)" in text
    assert target.is_file() and not (out / "boost_classes.yaml").exists()
    assert "group 1: Alpha (0), Beta (1)" in target.read_text(encoding="utf-8")
    assert sorted(p.name for p in target.parent.iterdir()) == ["boost.yaml"]  # no temp file


def test_names_fall_back_to_ids(tmp_path):
    config = command_config(tmp_path)
    y, pred = from_matrix(hand_made())
    fake_ensemble(config, pred, y, y, apply=False, names=None)
    rec = console()
    confusions_command(config, None, 0.1, 5, None, rec)
    assert "0 (0)" in rec.export_text() and "Alpha" not in rec.export_text()


def test_missing_ensemble_is_a_user_error(tmp_path):
    config = command_config(tmp_path)
    with pytest.raises(CompError, match="run `comp ensemble` first"):
        confusions_command(config, None, 0.1, 5, None, console())
    y, pred = from_matrix(hand_made())
    fake_ensemble(config, pred, y, y, apply=False)
    with pytest.raises(EnsembleError, match=r"ensembles/nope/oof\.parquet.*comp ensemble"):
        confusions_command(config, "nope", 0.1, 5, None, console())
    assert not (tmp_path / "runs" / "ensembles" / "nope").exists()


def test_bad_metrics_and_width_are_user_errors(tmp_path):
    config = command_config(tmp_path)
    y, pred = from_matrix(hand_made())
    out = fake_ensemble(config, pred, y, y, apply=False)
    (out / "metrics.json").write_text("{}")
    with pytest.raises(CompError, match="apply_adjustment"):
        confusions_command(config, None, 0.1, 5, None, console())
    (out / "metrics.json").write_text(json.dumps({"apply_adjustment": False}))
    config.data.num_labels = 7
    with pytest.raises(CompError, match="data.num_labels"):
        confusions_command(config, None, 0.1, 5, None, console())
    assert not (out / "boost_classes.yaml").exists()
