import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from comp.kinds.transformer.losses import drw_class_weights, ldam_loss, ldam_margins, recipe_loss
from comp.kinds.transformer.model import CosineHead

LOGITS = [[2.0, 0.5, -1.0, 0.3], [0.1, 1.5, 0.2, -0.4], [-0.3, 0.0, 0.8, 2.2]]
TARGETS = [0, 2, 3]


def log_softmax(row: list[float]) -> list[float]:
    mx = max(row)
    lse = mx + math.log(sum(math.exp(v - mx) for v in row))
    return [v - lse for v in row]


def manual_loss(logits, targets, margins, weights=None, s=1.0) -> float:
    """Per-row LDAM cross-entropy, then the (weighted) mean, in plain Python."""
    total, norm = 0.0, 0.0
    for row, y in zip(logits, targets, strict=True):
        z = [s * (v - (margins[y] if c == y else 0.0)) for c, v in enumerate(row)]
        w = 1.0 if weights is None else weights[y]
        total += -w * log_softmax(z)[y]
        norm += w
    return total / norm


def test_margins_formula_and_clamp():
    m = ldam_margins([600, 100, 7, 0])
    assert m.dtype == torch.float32
    expected = [600**-0.25, 100**-0.25, 7**-0.25, 1.0]  # 0 rows is clamped to 1
    assert m.tolist() == pytest.approx(expected, rel=1e-6)
    assert torch.isfinite(m).all()
    m2 = ldam_margins([600, 100, 7, 0], C=2.0)
    assert m2.tolist() == pytest.approx([2 * e for e in expected], rel=1e-6)


def test_margin_boosting_uses_count_over_factor():
    m = ldam_margins([600, 100, 7, 0], boost_classes=[0, 2])
    expected = [60**-0.25, 100**-0.25, 0.7**-0.25, 1.0]
    assert m.tolist() == pytest.approx(expected, rel=1e-6)
    m = ldam_margins([600, 100, 7, 0], boost_classes=[1], boost_factor=4.0)
    assert m[1].item() == pytest.approx(25**-0.25, rel=1e-6)
    with pytest.raises(ValueError):
        ldam_margins([1, 2], boost_classes=[2])


def test_margins_max_m_rescales_and_ignores_c():
    counts = [600, 100, 7, 0]
    raw = [600**-0.25, 100**-0.25, 7**-0.25, 1.0]
    expected = [0.5 * r / max(raw) for r in raw]
    for C in (1.0, 3.0):
        m = ldam_margins(counts, C=C, max_m=0.5)
        assert m.tolist() == pytest.approx(expected, rel=1e-6)
    assert ldam_margins([600, 10], max_m=0.5)[1].item() == pytest.approx(0.5)


def test_drw_weights_formula_sum_and_order():
    counts = [600, 100, 7, 0]
    beta = 0.9999
    raw = [(1 - beta) / (1 - beta ** max(n, 1)) for n in counts]
    expected = [4 * r / sum(raw) for r in raw]
    w = drw_class_weights(counts, beta)
    assert w.dtype == torch.float32
    assert w.tolist() == pytest.approx(expected, rel=1e-5)
    assert w.sum().item() == pytest.approx(4.0, rel=1e-6)
    assert w[0] < w[1] < w[2] <= w[3]  # rarer classes weigh more
    assert w[2].item() == pytest.approx(expected[2], rel=1e-5)
    assert drw_class_weights([5, 50, 500], beta=0.0).tolist() == pytest.approx([1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        drw_class_weights([1, 2], beta=1.0)


def test_ldam_loss_matches_manual_computation():
    logits, targets = torch.tensor(LOGITS), torch.tensor(TARGETS)
    margins = [0.2, 0.4, 0.6, 0.9]
    got = ldam_loss(logits, targets, torch.tensor(margins))
    assert got.item() == pytest.approx(manual_loss(LOGITS, TARGETS, margins), rel=1e-6)
    got = ldam_loss(logits, targets, torch.tensor(margins), s=3.0)
    assert got.item() == pytest.approx(manual_loss(LOGITS, TARGETS, margins, s=3.0), rel=1e-6)


def test_weighted_ldam_divides_by_sum_of_target_weights():
    logits, targets = torch.tensor(LOGITS), torch.tensor(TARGETS)
    margins = [0.2, 0.4, 0.6, 0.9]
    weights = [0.5, 1.0, 2.0, 4.0]
    got = ldam_loss(logits, targets, torch.tensor(margins), weight=torch.tensor(weights))
    expected = manual_loss(LOGITS, TARGETS, margins, weights)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # not the same as dividing by the batch size
    per_row_sum = expected * (0.5 + 2.0 + 4.0)
    assert abs(got.item() - per_row_sum / 3) > 1e-3


def test_margin_only_touches_true_class():
    logits, targets = torch.tensor(LOGITS), torch.tensor(TARGETS)
    zero = ldam_loss(logits, targets, torch.zeros(4))
    plain = sum(-log_softmax(r)[y] for r, y in zip(LOGITS, TARGETS, strict=True)) / 3
    assert zero.item() == pytest.approx(plain, rel=1e-6)


def test_recipe_loss_switches_at_drw_start():
    logits, targets = torch.tensor(LOGITS), torch.tensor(TARGETS)
    margins, weights = [0.2, 0.4, 0.6, 0.9], [0.5, 1.0, 2.0, 4.0]
    kw = dict(drw_start_epoch=5, margins=torch.tensor(margins), weights=torch.tensor(weights))
    plain = sum(-log_softmax(r)[y] for r, y in zip(LOGITS, TARGETS, strict=True)) / 3
    for epoch in (0, 4):
        assert recipe_loss(logits, targets, epoch, **kw).item() == pytest.approx(plain, rel=1e-6)
    ldam_drw = manual_loss(LOGITS, TARGETS, margins, weights)
    for epoch in (5, 19):
        got = recipe_loss(logits, targets, epoch, **kw).item()
        assert got == pytest.approx(ldam_drw, rel=1e-6)
    # s scales the logits in the CE phase too
    scaled = [[2 * v for v in r] for r in LOGITS]
    plain2 = sum(-log_softmax(r)[y] for r, y in zip(scaled, TARGETS, strict=True)) / 3
    assert recipe_loss(logits, targets, 0, s=2.0, **kw).item() == pytest.approx(plain2, rel=1e-6)


def test_s30_blows_up_a_plain_linear_head():
    # DESIGN §3: std-3 logits from a plain linear head, s = 30 multiplies the loss ~30x.
    counts = [600] * 39 + [int(c) for c in np.linspace(590, 7, 43)]
    gen = torch.Generator().manual_seed(0)
    logits = 3.0 * torch.randn(64, 82, generator=gen)
    targets = torch.randint(0, 82, (64,), generator=gen)
    margins = ldam_margins(counts)
    ce = F.cross_entropy(logits, targets).item()
    ldam1 = ldam_loss(logits, targets, margins).item()
    ldam30 = ldam_loss(logits, targets, margins, s=30.0).item()
    # a margin Δ_y can only raise a row's loss, and by at most Δ_y
    assert ce <= ldam1 <= ce + margins.max().item()
    assert ldam30 > 50.0
    assert 15.0 < ldam30 / ce < 60.0


def test_cosine_head_outputs_cosines():
    torch.manual_seed(0)
    head = CosineHead(8, 5)
    x = torch.randn(3, 8)
    out = head(x).detach().numpy()
    xn, wn = x.numpy(), head.weight.detach().numpy()
    expected = np.array(
        [[xr @ wr / (np.linalg.norm(xr) * np.linalg.norm(wr)) for wr in wn] for xr in xn]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(out).max() <= 1.0 + 1e-6
    torch.testing.assert_close(head(7.0 * x), head(x))  # scale-invariant in the features
    assert len(list(head.parameters())) == 1
