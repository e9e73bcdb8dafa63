import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from comp.kinds.transformer.fgm import FGM
from tests.conftest import tiny_bert


class TinyClassifier(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.backbone = tiny_bert()
        self.head = nn.Linear(16, num_classes)

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(input_ids=input_ids).last_hidden_state[:, 0])


def make_model(seed: int = 0) -> TinyClassifier:
    torch.manual_seed(seed)
    return TinyClassifier().eval()


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 50, (4, 10), generator=gen), torch.randint(0, 3, (4,), generator=gen)


def loss_of(model: nn.Module, ids: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(ids), y)


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_perturbation_is_eps_times_unit_gradient_and_restore_is_exact():
    model = make_model()
    ids, y = batch()
    emb = model.get_input_embeddings().weight
    before = emb.detach().clone()
    loss_of(model, ids, y).backward()
    g = emb.grad.detach().numpy().astype(np.float64)
    eps = 0.5
    expected = before.numpy().astype(np.float64) + eps * g / np.sqrt((g**2).sum())

    fgm = FGM(model)
    assert fgm.attack(eps) is True
    np.testing.assert_allclose(emb.detach().numpy(), expected, rtol=0, atol=1e-6)
    delta = emb.detach().numpy().astype(np.float64) - before.numpy()
    assert np.sqrt((delta**2).sum()) == pytest.approx(eps, rel=1e-4)
    fgm.restore()
    assert torch.equal(emb.detach(), before)
    assert fgm.backup is None


def test_skips_missing_zero_and_non_finite_gradients():
    model = make_model()
    emb = model.get_input_embeddings().weight
    before = emb.detach().clone()
    fgm = FGM(model)
    assert emb.grad is None
    assert fgm.attack(0.2) is False
    emb.grad = torch.zeros_like(emb)
    assert fgm.attack(0.2) is False
    for bad in (float("nan"), float("inf")):
        emb.grad = torch.ones_like(emb)
        emb.grad[3, 4] = bad
        assert fgm.attack(0.2) is False
    fgm.restore()  # no-op after a skip
    assert torch.equal(emb.detach(), before)


def test_attack_twice_without_restore_is_an_error():
    model = make_model()
    ids, y = batch()
    loss_of(model, ids, y).backward()
    fgm = FGM(model)
    assert fgm.attack(0.1)
    with pytest.raises(RuntimeError):
        fgm.attack(0.1)
    fgm.restore()


def test_gradients_of_clean_and_adversarial_passes_add_up():
    ids, y = batch()
    eps = 0.3

    # 1. clean gradient, computed alone
    clean = make_model()
    loss_of(clean, ids, y).backward()
    g_clean = grads(clean)

    # 2. adversarial gradient, computed alone on a copy perturbed by hand
    perturbed = make_model()
    g_emb = g_clean["backbone.embeddings.word_embeddings.weight"].double()
    with torch.no_grad():
        w = perturbed.get_input_embeddings().weight
        w.copy_((w.double() + eps * g_emb / g_emb.pow(2).sum().sqrt()).float())
    loss_of(perturbed, ids, y).backward()
    g_adv = grads(perturbed)

    # 3. the loop: backward, attack, backward, restore
    model = make_model()
    before = copy.deepcopy(model.state_dict())
    fgm = FGM(model)
    loss_of(model, ids, y).backward()
    assert fgm.attack(eps)
    loss_of(model, ids, y).backward()
    fgm.restore()

    got = grads(model)
    assert set(got) == set(g_clean) == set(g_adv)
    for name in got:
        torch.testing.assert_close(got[name], g_clean[name] + g_adv[name], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(g_adv["head.weight"], g_clean["head.weight"])  # the attack did bite
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_explicit_gradient_sets_the_direction_under_accumulation():
    """With accumulation, .grad holds an earlier micro-batch too; grad= attacks along this one's."""
    model = make_model()
    emb = model.get_input_embeddings().weight
    loss_of(model, *batch(seed=1)).backward()  # an earlier micro-batch
    earlier = emb.grad.detach().clone()
    loss_of(model, *batch(seed=2)).backward()
    own = (emb.grad - earlier).numpy().astype(np.float64)
    before = emb.detach().clone().numpy().astype(np.float64)
    fgm = FGM(model)
    assert fgm.attack(0.3, grad=emb.grad - earlier)
    expected = before + 0.3 * own / np.sqrt((own**2).sum())
    np.testing.assert_allclose(emb.detach().numpy(), expected, rtol=0, atol=1e-6)
    accumulated = emb.grad.numpy().astype(np.float64)
    wrong = before + 0.3 * accumulated / np.sqrt((accumulated**2).sum())
    assert np.abs(emb.detach().numpy() - wrong).max() > 1e-4
    fgm.restore()


def test_row_fgm_moves_the_touched_rows_as_fgm_does_and_restores_them_bit_for_bit():
    """The sync-free step's FGM: the same move as FGM's (the gradient is zero outside the
    batch's token ids, which repeat here), no host read, and an exact restore."""
    from comp.kinds.transformer.fgm import RowFGM

    model = make_model()
    ids, y = batch()
    emb = model.get_input_embeddings().weight
    original = emb.detach().clone()
    loss_of(model, ids, y).backward()
    assert len(ids.flatten().unique()) < ids.numel()  # repeated ids: counted once in the norm
    FGM(model).attack(0.5)
    by_fgm = emb.detach().clone()
    emb.data.copy_(original)

    row_fgm = RowFGM(model)
    flat = ids.flatten()
    attacked = row_fgm.attack(flat, torch.zeros(len(flat), emb.shape[1]), 0.5)
    assert attacked.item() == 1.0
    torch.testing.assert_close(emb.detach(), by_fgm, rtol=1e-6, atol=1e-7)
    untouched = torch.ones(len(emb), dtype=torch.bool)
    untouched[flat] = False
    assert torch.equal(emb.detach()[untouched], original[untouched])
    row_fgm.restore(flat)
    assert torch.equal(emb.detach(), original)


@pytest.mark.parametrize("value", [0.0, float("nan")])
def test_row_fgm_leaves_the_weights_alone_on_a_zero_or_non_finite_gradient(value):
    from comp.kinds.transformer.fgm import RowFGM

    model = make_model()
    ids, _ = batch()
    emb = model.get_input_embeddings().weight
    emb.grad = torch.full_like(emb, value)
    original = emb.detach().clone()
    flat = ids.flatten()
    row_fgm = RowFGM(model)
    attacked = row_fgm.attack(flat, torch.zeros(len(flat), emb.shape[1]), 0.5)
    assert attacked.item() == 0.0
    if value == 0.0:
        assert torch.equal(emb.detach(), original)
    row_fgm.restore(flat)
    assert torch.equal(emb.detach(), original)
