import warnings

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, BertModel

from comp.neural.optim import linear_warmup_decay, llrd_param_groups

HEAD_LR, XI, WD = 1e-3, 0.9, 0.01


def tiny_config(layers: int = 12) -> BertConfig:
    return BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=5,
    )


class BackboneHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = BertModel(tiny_config())
        self.head = nn.Linear(16, 5)


def expected_lr(name: str, num_layers: int = 12) -> float:
    parts = name.split(".")
    for k in range(len(parts) - 2):
        if parts[k] == "encoder" and parts[k + 1] == "layer":
            layer = int(parts[k + 2]) + 1
            return HEAD_LR * XI ** (num_layers - layer)
    if "embeddings" in parts:
        return HEAD_LR * XI**num_layers
    return HEAD_LR  # pooler and head


def lr_and_wd_by_name(groups: list[dict]) -> dict[str, tuple[float, float]]:
    out = {}
    for g in groups:
        assert len(g["params"]) == len(g["param_names"])
        for name in g["param_names"]:
            assert name not in out, f"{name} in two groups"
            out[name] = (g["lr"], g["weight_decay"])
    return out


def check_groups(model: nn.Module, groups: list[dict]) -> None:
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    # every trainable parameter exactly once, and names match tensors
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(trainable)
    for g in groups:
        for name, p in zip(g["param_names"], g["params"], strict=True):
            assert trainable[name] is p
    table = lr_and_wd_by_name(groups)
    assert set(table) == set(trainable)
    for name, (lr, wd) in table.items():
        assert lr == pytest.approx(expected_lr(name), rel=1e-12), name
        no_decay = name.endswith(".bias") or ".LayerNorm." in name
        assert wd == (0.0 if no_decay else WD), name


def test_llrd_on_sequence_classifier():
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config())
    groups = llrd_param_groups(model, HEAD_LR, XI, WD)
    check_groups(model, groups)
    table = lr_and_wd_by_name(groups)
    assert table["bert.embeddings.word_embeddings.weight"] == (pytest.approx(1e-3 * 0.9**12), WD)
    assert table["bert.encoder.layer.0.attention.self.query.weight"][0] == pytest.approx(
        1e-3 * 0.9**11
    )
    assert table["bert.encoder.layer.11.output.dense.weight"][0] == pytest.approx(1e-3)
    assert table["bert.encoder.layer.5.output.LayerNorm.weight"] == (
        pytest.approx(1e-3 * 0.9**6),
        0.0,
    )
    assert table["bert.pooler.dense.weight"] == (pytest.approx(1e-3), WD)
    assert table["classifier.bias"] == (pytest.approx(1e-3), 0.0)
    # 12 layers + embeddings + head, each split into decay / no_decay
    assert len(groups) == 28
    # torch accepts the groups (param_names included) and keeps the lrs
    opt = torch.optim.AdamW(groups, lr=123.0)
    assert sorted({g["lr"] for g in opt.param_groups}) == sorted({g["lr"] for g in groups})
    opt.load_state_dict(opt.state_dict())


def test_llrd_on_backbone_and_head_with_frozen_param():
    torch.manual_seed(0)
    model = BackboneHead()
    model.backbone.embeddings.position_embeddings.weight.requires_grad_(False)
    groups = llrd_param_groups(model, HEAD_LR, XI, WD)
    check_groups(model, groups)
    names = {n for g in groups for n in g["param_names"]}
    assert "backbone.embeddings.position_embeddings.weight" not in names
    table = lr_and_wd_by_name(groups)
    assert table["head.weight"] == (pytest.approx(HEAD_LR), WD)
    assert table["backbone.encoder.layer.0.intermediate.dense.bias"] == (
        pytest.approx(HEAD_LR * XI**11),
        0.0,
    )


def test_llrd_num_layers_checks():
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config(layers=2))
    groups = llrd_param_groups(model, HEAD_LR, XI, WD, num_layers=4)  # deeper L: all lrs lower
    table = lr_and_wd_by_name(groups)
    assert table["bert.encoder.layer.1.output.dense.weight"][0] == pytest.approx(HEAD_LR * XI**2)
    assert table["bert.embeddings.word_embeddings.weight"][0] == pytest.approx(HEAD_LR * XI**4)
    with pytest.raises(ValueError):
        llrd_param_groups(model, HEAD_LR, XI, WD, num_layers=1)
    with pytest.raises(ValueError):
        llrd_param_groups(nn.Linear(3, 2), HEAD_LR, XI, WD)


def run_schedule(total: int, ratio: float, lrs: tuple[float, ...]) -> list[list[float]]:
    params = [nn.Parameter(torch.zeros(1)) for _ in lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs, strict=True)])
    sched = linear_warmup_decay(opt, total, ratio)
    seen = [list(sched.get_last_lr())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(total + 5):
            opt.step()
            sched.step()
            seen.append(list(sched.get_last_lr()))
    return seen


def test_linear_warmup_decay_matches_hand_computation():
    seen = run_schedule(200, 0.1, (1.0, 0.5))  # warmup = 20 steps, decay over 180
    assert seen[0] == [0.0, 0.0]
    assert seen[10] == pytest.approx([0.5, 0.25])
    assert seen[20] == pytest.approx([1.0, 0.5])  # end of warmup: peak
    assert seen[110] == pytest.approx([0.5, 0.25])  # midway through the decay: (200-110)/180
    assert seen[155] == pytest.approx([0.25, 0.125])
    assert seen[200] == [0.0, 0.0]
    assert seen[204] == [0.0, 0.0]
    # monotone up, then monotone down
    first = [s[0] for s in seen]
    assert first[:21] == sorted(first[:21])
    assert first[20:] == sorted(first[20:], reverse=True)


def test_linear_warmup_decay_paper_schedule_and_no_warmup():
    seen = run_schedule(8000, 0.1, (2e-5,))
    assert seen[400][0] == pytest.approx(1e-5)
    assert seen[800][0] == pytest.approx(2e-5)
    assert seen[4400][0] == pytest.approx(1e-5)
    assert seen[8000][0] == 0.0
    seen = run_schedule(10, 0.0, (1.0,))
    assert seen[0] == [1.0] and seen[5] == pytest.approx([0.5]) and seen[10] == [0.0]
    with pytest.raises(ValueError):
        linear_warmup_decay(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 0)
