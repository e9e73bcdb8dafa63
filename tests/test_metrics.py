import numpy as np
from sklearn.metrics import f1_score

from comp.metrics import macro_f1, per_class_f1


def test_matches_scikit_learn_on_random_long_tailed_labels():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.choice(12, size=300, p=np.r_[[0.3, 0.2], np.full(10, 0.05)])
        p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 14, 300))
        assert macro_f1(y, p, 14) == f1_score(y, p, average="macro")
        expected = f1_score(y, p, labels=range(14), average=None, zero_division=0)
        np.testing.assert_allclose(per_class_f1(y, p, 14), expected)


def test_hand_computed_case():
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 1, 1, 1])
    # class 0: tp 1, fp 0, fn 1 -> 2/3; class 1: tp 2, fp 1, fn 0 -> 4/5; class 2 absent
    assert macro_f1(y, p, 3) == (2 / 3 + 4 / 5) / 2
