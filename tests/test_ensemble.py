import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import f1_score

from comp.calibration import TEMPERATURE_RANGE, fit_temperature
from comp.data import load_train
from comp.ensemble import EnsembleError, average, log_softmax, run_ensemble
from comp.folds import folds_paths, make_folds
from comp.io import sha256_file
from tests.conftest import qa, small_config, write_csv


def competition(tmp_path: Path, labels: list[int], num_labels: int, k: int = 2):
    names = [f"class {i}" for i in range(num_labels)]
    rows = [[qa(f"س {i}", "ج"), names[y], y] for i, y in enumerate(labels)]
    write_csv(tmp_path / "train.csv", ["text", "category", "label"], rows)
    config = small_config(tmp_path, num_labels=num_labels, k=k)
    config.train.runs_dir = str(tmp_path / "runs")
    config.ensemble.tau_max, config.ensemble.tau_step = 2.0, 0.25
    make_folds(config, load_train(config.data))
    fold = pl.read_csv(folds_paths(config)[0])["fold"].to_numpy()
    return config, np.asarray(labels), fold


def fake_run(
    config,
    experiment: str,
    fold: np.ndarray,
    oof_logits: np.ndarray,
    test_logits_per_fold: list[np.ndarray],
    test_ids=("a", "b", "c"),
) -> None:
    """Fold outputs in the layout `comp train` writes."""
    c = oof_logits.shape[1]
    sha = sha256_file(folds_paths(config)[0])
    for k in range(config.folds.k):
        out = Path(config.train.runs_dir) / experiment / f"fold{k}"
        out.mkdir(parents=True, exist_ok=True)
        rows = np.flatnonzero(fold == k)
        pl.DataFrame(
            {
                "row": rows,
                "label": np.zeros(len(rows), dtype=np.int64),
                "fold": np.full(len(rows), k),
            }
        ).with_columns(
            pl.Series("logits", oof_logits[rows], dtype=pl.Array(pl.Float32, c))
        ).write_parquet(out / "oof.parquet")
        pl.DataFrame({"set": ["public"] * len(test_ids), "Id": list(test_ids)}).with_columns(
            pl.Series("logits", test_logits_per_fold[k], dtype=pl.Array(pl.Float32, c))
        ).write_parquet(out / "test_logits.parquet")
        (out / "metrics.json").write_text(json.dumps({"folds_sha256": sha}))


def two_random_runs(tmp_path: Path, repeats: int, seed: int):
    """Experiments "a" and "b" with random logits over [0, 1, 2] * repeats rows and 2 folds:
    (config, labels, fold ids, oof_a, oof_b, per-fold test logits of a, of b)."""
    config, y, fold = competition(tmp_path, [0, 1, 2] * repeats, 3)
    rng = np.random.default_rng(seed)
    oof_a, oof_b = rng.normal(size=(len(y), 3)), rng.normal(size=(len(y), 3))
    tests_a = [rng.normal(size=(3, 3)) for _ in range(2)]
    tests_b = [rng.normal(size=(3, 3)) for _ in range(2)]
    fake_run(config, "a", fold, oof_a, tests_a)
    fake_run(config, "b", fold, oof_b, tests_b)
    return config, y, fold, oof_a, oof_b, tests_a, tests_b


def test_averages_match_hand_computation(tmp_path):
    config, y, fold, oof_a, oof_b, tests_a, tests_b = two_random_runs(tmp_path, 4, 0)
    config.ensemble.weights = [3.0, 1.0]
    config.ensemble.calibrate = False  # the hand computation averages the raw logits
    result = run_ensemble(config, ["a", "b"])
    assert result.metrics["temperatures"] == [1.0, 1.0]
    saved = pl.read_parquet(result.out_dir / "test_logits.parquet")
    expected = 0.75 * (tests_a[0] + tests_a[1]) / 2 + 0.25 * (tests_b[0] + tests_b[1]) / 2
    np.testing.assert_allclose(saved["logits"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    oof = pl.read_parquet(result.out_dir / "oof.parquet")
    assert oof["row"].to_list() == list(range(12))
    np.testing.assert_allclose(
        oof["logits"].to_numpy(), 0.75 * oof_a + 0.25 * oof_b, rtol=1e-5, atol=1e-6
    )
    raw = f1_score(y, (0.75 * oof_a + 0.25 * oof_b).argmax(1), average="macro")
    assert result.metrics["oof_macro_f1"] == pytest.approx(raw)
    for name in ("config.yaml", "metrics.json", "per_class.csv"):
        assert (result.out_dir / name).is_file()


def test_mean_of_probabilities():
    a = np.log(np.array([[0.7, 0.2, 0.1]]))
    b = np.log(np.array([[0.1, 0.3, 0.6]]))
    out = average([a, b], np.array([1.0, 1.0]), "probs")
    np.testing.assert_allclose(np.exp(out), [[0.4, 0.25, 0.35]], rtol=1e-6)


def test_missing_fold_duplicate_rows_and_other_folds_are_errors(tmp_path):
    config, y, fold = competition(tmp_path, [0, 1] * 6, 2)
    logits = np.zeros((12, 2))
    fake_run(config, "ok", fold, logits, [np.zeros((3, 2))] * 2)
    base = Path(config.train.runs_dir)

    (base / "ok" / "fold1" / "metrics.json").unlink()
    with pytest.raises(EnsembleError, match="fold 1 of experiment 'ok' is missing"):
        run_ensemble(config, ["ok"])

    fake_run(config, "dup", fold, logits, [np.zeros((3, 2))] * 2)
    path = base / "dup" / "fold0" / "oof.parquet"
    frame = pl.read_parquet(path)
    pl.concat([frame, frame.head(1)]).write_parquet(path)
    with pytest.raises(EnsembleError, match="fold0/oof.parquet: duplicated rows"):
        run_ensemble(config, ["dup"])

    fake_run(config, "short", fold, logits, [np.zeros((3, 2))] * 2)
    path = base / "short" / "fold1" / "oof.parquet"
    pl.read_parquet(path).tail(-1).write_parquet(path)
    with pytest.raises(EnsembleError, match=r"rows do not match fold 1 .*missing \[\d+\]"):
        run_ensemble(config, ["short"])

    fake_run(config, "other", fold, logits, [np.zeros((3, 2))] * 2)
    metrics = base / "other" / "fold0" / "metrics.json"
    metrics.write_text(json.dumps({"folds_sha256": "0" * 64}))
    with pytest.raises(EnsembleError, match="trained on other folds"):
        run_ensemble(config, ["other"])


def test_train_only_rows_are_listed_and_left_out(tmp_path):
    config, y, fold = competition(tmp_path, [0, 1] * 5 + [2], 3)
    assert fold[-1] == -1
    fake_run(config, "x", fold, np.eye(3)[y] * 2.0, [np.zeros((3, 3))] * 2)
    result = run_ensemble(config, ["x"])
    assert result.metrics["train_only_rows"] == [10]
    assert result.metrics["oof_rows"] == 10


def test_cross_fitting_never_reports_an_in_sample_gain(tmp_path):
    """Fold 0's rare-class rows need a positive tau; fold 1's frequent rows are hurt by it.
    Tuned on all rows, tau looks useful; cross-fitted, it is not, and it is not applied."""
    labels = ([0] * 8 + [1] * 2) * 4
    config, y, fold = competition(tmp_path, labels, 2)
    logits = np.zeros((len(y), 2))
    weak = np.flatnonzero((fold == 1) & (y == 0))[:2]
    for i, (label, f) in enumerate(zip(y, fold, strict=True)):
        if label == 1:  # fold 0: the rare class slightly under-scored, adjustment fixes it
            logits[i] = [1.0, 0.0] if f == 0 else [0.0, 3.0]
        else:  # two frequent rows of fold 1 barely ahead: adjustment breaks them
            logits[i] = [0.5, 0.0] if i in weak else [5.0, 0.0]
    fake_run(config, "x", fold, logits, [np.zeros((3, 2))] * 2)
    result = run_ensemble(config, ["x"])
    m = result.metrics

    prior = np.bincount(y) / len(y)
    grid = np.arange(0, 2.0 + 0.125, 0.25)
    in_sample = max(
        f1_score(y, (logits - t * np.log(prior)).argmax(1), average="macro") for t in grid
    )
    raw = f1_score(y, logits.argmax(1), average="macro")
    assert in_sample > raw + 0.05  # tuning on the same rows looks like a gain
    # the reported adjusted score is the cross-fitted one, recomputed here independently
    crossfit_pred = np.empty(len(y), dtype=int)
    for f in (0, 1):
        others = fold != f
        scores = [
            f1_score(y[others], (logits[others] - t * np.log(prior)).argmax(1), average="macro")
            for t in grid
        ]
        tau = grid[int(np.argmax(scores))]
        assert m["tau_per_fold"][f] == pytest.approx(tau)
        crossfit_pred[fold == f] = (logits[fold == f] - tau * np.log(prior)).argmax(1)
    assert m["oof_macro_f1_adjusted_crossfit"] == pytest.approx(
        f1_score(y, crossfit_pred, average="macro")
    )
    assert m["oof_macro_f1_adjusted_crossfit"] < in_sample
    assert not m["apply_adjustment"]


def test_adjustment_applied_when_it_helps_on_every_fold(tmp_path):
    labels = ([0] * 8 + [1] * 2) * 4
    config, y, fold = competition(tmp_path, labels, 2)
    logits = np.where(np.eye(2)[y] > 0, 0.0, 0.0)
    logits[:, 0] += 1.0  # every row leans to the frequent class: rare class never predicted
    logits[y == 1, 1] += 0.6
    fake_run(config, "x", fold, logits, [np.zeros((3, 2))] * 2)
    m = run_ensemble(config, ["x"]).metrics
    assert m["oof_macro_f1_adjusted_crossfit"] > m["oof_macro_f1"]
    assert m["apply_adjustment"] and m["tau_test"] > 0


def test_class_bias_option_is_cross_fitted(tmp_path):
    """Fold f's adjusted OOF logits come from a τ and biases fitted on the other folds only:
    relabelling fold 0's rows (class counts unchanged, so the prior too) leaves fold 0's
    adjusted logits bit for bit as they were, and moves fold 1's, which learn from fold 0."""
    config, y, fold = competition(tmp_path, [0, 1, 2] * 8, 3)
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(24, 3)) + 1.5 * np.eye(3)[y]
    config.ensemble.class_bias = True
    config.ensemble.calibrate = False  # T is fitted on every OOF row by design (README)

    def adjusted_oof(experiment: str) -> np.ndarray:
        fake_run(config, experiment, fold, logits, [np.zeros((3, 3))] * 2)
        result = run_ensemble(config, [experiment])
        assert result.metrics["class_bias"]
        frame = pl.read_parquet(result.out_dir / "oof.parquet")
        return frame.sort("row")["logits_adjusted"].to_numpy()

    before = adjusted_oof("x")
    csv_path = folds_paths(config)[0]
    folds = pl.read_csv(csv_path)
    in_fold0 = np.flatnonzero(fold == 0)
    shuffled = folds["label"].to_numpy().copy()
    shuffled[in_fold0] = (shuffled[in_fold0] + 1) % 3  # 4 rows of each class either way
    assert (shuffled[in_fold0] != y[in_fold0]).all()
    assert np.array_equal(np.bincount(shuffled), np.bincount(y))
    folds.with_columns(pl.Series("label", shuffled)).write_csv(csv_path)
    after = adjusted_oof("y")  # the fold file changed: a run on the new one

    np.testing.assert_array_equal(after[fold == 0], before[fold == 0])
    assert not np.array_equal(after[fold == 1], before[fold == 1])


def test_fit_temperature_recovers_the_scale_of_calibrated_logits():
    rng = np.random.default_rng(0)
    z = 3 * rng.normal(size=(4000, 10))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (p.cumsum(1) > rng.random((len(z), 1))).argmax(1)  # labels drawn from softmax(z)
    for scale in (0.1, 1.0, 6.0):
        assert fit_temperature(scale * z, y) == pytest.approx(scale, rel=0.1)
    assert fit_temperature(np.zeros((4, 3)), np.array([0, 1, 2, 0])) == 1.0


def test_fit_temperature_stays_in_range_and_refuses_bad_logits():
    y = np.array([0, 1, 2, 0])
    separable, wrong = 5 * np.eye(3)[y], -5 * np.eye(3)[y]
    low, high = TEMPERATURE_RANGE
    assert low <= fit_temperature(separable, y) < 0.25  # best T -> 0: stops small, not at 0
    assert fit_temperature(wrong, y) == pytest.approx(high)  # best T -> infinity: the edge
    for bad in (np.nan, np.inf):
        logits = np.zeros((4, 3))
        logits[1, 2] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            fit_temperature(logits, y)


def test_calibrated_probability_average_treats_oof_and_test_alike(tmp_path):
    config, y, fold = competition(tmp_path, [0, 1, 2] * 20, 3)
    rng = np.random.default_rng(2)
    oof = 0.2 * (3 * np.eye(3)[y] + rng.normal(size=(60, 3)))
    # every fold's test logits equal to OOF rows: the ensemble's test output must then be the
    # same function of them as its OOF output
    tests = [oof[:3], oof[:3]]
    fake_run(config, "a", fold, oof, tests)
    config.ensemble.average, config.ensemble.logit_adjustment = "probs", False
    result = run_ensemble(config, ["a"])
    t = result.metrics["temperatures"][0]
    saved_oof = pl.read_parquet(result.out_dir / "oof.parquet")["logits"].to_numpy()
    saved_test = pl.read_parquet(result.out_dir / "test_logits.parquet")["logits"].to_numpy()
    np.testing.assert_allclose(saved_test, saved_oof[:3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(saved_test, log_softmax(oof[:3] / t), rtol=1e-5, atol=1e-5)


def test_calibration_lets_a_compressed_strong_model_count(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 400).tolist()
    config, y, fold = competition(tmp_path, labels, 4)
    onehot = np.eye(4)[y]
    strong = 0.05 * (4 * onehot + rng.normal(size=(400, 4)))  # right, on a squeezed scale
    weak = 1.0 * onehot + 1.5 * rng.normal(size=(400, 4))
    tests = [rng.normal(size=(3, 4)) for _ in range(2)]
    fake_run(config, "strong", fold, strong, tests)
    fake_run(config, "weak", fold, weak, tests)
    config.ensemble.logit_adjustment = False
    scores = {}
    for calibrate in (False, True):
        config.ensemble.calibrate = calibrate
        config.ensemble.name = f"calibrate_{calibrate}"
        scores[calibrate] = run_ensemble(config, ["strong", "weak"])
    t_strong, t_weak = scores[True].metrics["temperatures"]
    assert t_strong < 0.2 < 0.5 < t_weak  # the squeezed model is stretched, the weak damped
    assert scores[True].metrics["oof_macro_f1"] > scores[False].metrics["oof_macro_f1"] + 0.1
    saved = pl.read_parquet(scores[True].out_dir / "test_logits.parquet")["logits"].to_numpy()
    expected = 0.5 * ((tests[0] + tests[1]) / 2 / t_strong + (tests[0] + tests[1]) / 2 / t_weak)
    np.testing.assert_allclose(saved, expected, rtol=1e-4, atol=1e-5)


def test_optimized_weights_are_cross_fitted(tmp_path):
    # "a" is right on fold 0 only, "b" (more confident) on fold 1 only. Fitted on all rows,
    # equal weights already score 0.5 and nothing beats them; fitted on one fold, each fold's
    # weights favour the other fold's model, so the honest OOF score is 0.
    config, y, fold = competition(tmp_path, [0, 1, 2] * 8, 3)
    right, wrong = np.eye(3)[y], np.eye(3)[(y + 1) % 3]
    on_fold0 = (fold == 0)[:, None]
    a = 2.0 * np.where(on_fold0, right, wrong)
    b = 2.9 * np.where(on_fold0, wrong, right)  # 2.9: no ties on the search grid
    rng = np.random.default_rng(1)
    tests_a = [rng.normal(size=(3, 3)) for _ in range(2)]
    tests_b = [rng.normal(size=(3, 3)) for _ in range(2)]
    fake_run(config, "a", fold, a, tests_a)
    fake_run(config, "b", fold, b, tests_b)
    config.ensemble.calibrate = False
    result = run_ensemble(config, ["a", "b"], optimize=True)
    m = result.metrics
    np.testing.assert_allclose(m["weights"], [0.5, 0.5])
    np.testing.assert_allclose(m["weights_per_fold"], [[0.5, 0.5], [0.6, 0.4]])
    oof = pl.read_parquet(result.out_dir / "oof.parquet")["logits"].to_numpy()
    for f, (wa, wb) in enumerate(m["weights_per_fold"]):
        rows = fold == f
        np.testing.assert_allclose(oof[rows], wa * a[rows] + wb * b[rows], rtol=1e-5)
    assert m["oof_macro_f1"] == 0.0
    test = pl.read_parquet(result.out_dir / "test_logits.parquet")["logits"].to_numpy()
    expected = 0.5 * (tests_a[0] + tests_a[1]) / 2 + 0.5 * (tests_b[0] + tests_b[1]) / 2
    np.testing.assert_allclose(test, expected, rtol=1e-5, atol=1e-6)


def test_test_logits_use_the_weights_fitted_on_every_row(tmp_path, monkeypatch):
    import comp.ensemble as ensemble

    config, _, _, oof_a, oof_b, tests_a, tests_b = two_random_runs(tmp_path, 8, 2)
    config.ensemble.calibrate = False

    def by_row_count(parts, labels, how, c):  # a fit on 12 rows differs from one on 24
        return np.array([len(labels), 1.0]) / (len(labels) + 1.0)

    monkeypatch.setattr(ensemble, "optimize_weights", by_row_count)
    m = run_ensemble(config, ["a", "b"], optimize=True).metrics
    np.testing.assert_allclose(m["weights"], [24 / 25, 1 / 25])
    np.testing.assert_allclose(m["weights_per_fold"], [[12 / 13, 1 / 13]] * 2)
    out = tmp_path / "runs" / "ensembles" / config.ensemble.name
    test = pl.read_parquet(out / "test_logits.parquet")["logits"].to_numpy()
    mean_a, mean_b = (tests_a[0] + tests_a[1]) / 2, (tests_b[0] + tests_b[1]) / 2
    np.testing.assert_allclose(test, 24 / 25 * mean_a + 1 / 25 * mean_b, rtol=1e-5, atol=1e-6)
    oof = pl.read_parquet(out / "oof.parquet")["logits"].to_numpy()
    np.testing.assert_allclose(oof, 12 / 13 * oof_a + 1 / 13 * oof_b, rtol=1e-5, atol=1e-6)
