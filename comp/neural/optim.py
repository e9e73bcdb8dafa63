"""Layer-wise learning-rate decay (LLRD) parameter groups and the warmup + linear-decay schedule.

Names are matched anywhere in the parameter name, so `bert.encoder.layer.3.…` (a
`*ForSequenceClassification`) and `backbone.encoder.layer.3.…` (an AutoModel under
`model.backbone`) both work:

- `encoder.layer.<i>.` -> layer l = i + 1, lr = head_lr * decay^(L - l)
- `embeddings.`        -> lr = head_lr * decay^L (one step below layer 1)
- everything else (pooler, head, any other parameter) -> head_lr
"""

from __future__ import annotations

import re

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

_LAYER = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")
_EMBEDDINGS = re.compile(r"(?:^|\.)embeddings\.")
_NORM_NAMES = ("layernorm", "layer_norm")


def _no_weight_decay(name: str, ndim: int) -> bool:
    lowered = name.lower()
    return ndim <= 1 or "bias" in lowered or any(k in lowered for k in _NORM_NAMES)


def _depth(name: str) -> tuple[str, int | None]:
    """("layer", i) for encoder.layer.i, ("embeddings", None), or ("head", None)."""
    if match := _LAYER.search(name):
        return "layer", int(match.group(1))
    if _EMBEDDINGS.search(name):
        return "embeddings", None
    return "head", None


def llrd_param_groups(
    model: nn.Module,
    head_lr: float,
    decay: float,
    weight_decay: float,
    num_layers: int | None = None,
) -> list[dict]:
    """AdamW-ready parameter groups with LLRD; each trainable parameter in exactly one group.

    Biases, LayerNorm weights and any other 1-d parameter get weight_decay 0. L is the number of
    encoder layers found in the model unless num_layers is given. Each group carries `name`
    (e.g. "layer_12/no_decay") and `param_names` besides `params`, `lr` and `weight_decay`.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    found = {i for n, _ in named if (i := _depth(n)[1]) is not None}
    if num_layers is None:
        if not found:
            raise ValueError("no 'encoder.layer.<i>.' parameters found; pass num_layers")
        num_layers = max(found) + 1
    elif found and max(found) >= num_layers:
        raise ValueError(f"model has encoder.layer.{max(found)} but num_layers={num_layers}")

    groups: dict[str, dict] = {}
    for name, param in named:
        kind, index = _depth(name)
        if kind == "layer":
            label, lr = f"layer_{index + 1}", head_lr * decay ** (num_layers - (index + 1))
        elif kind == "embeddings":
            label, lr = "embeddings", head_lr * decay**num_layers
        else:
            label, lr = "head", head_lr
        wd = 0.0 if _no_weight_decay(name, param.ndim) else weight_decay
        key = f"{label}/{'no_decay' if wd == 0.0 else 'decay'}"
        group = groups.setdefault(
            key, {"name": key, "params": [], "param_names": [], "lr": lr, "weight_decay": wd}
        )
        group["params"].append(param)
        group["param_names"].append(name)
    return list(groups.values())


def linear_warmup_decay(
    optimizer: Optimizer, total_steps: int, warmup_ratio: float = 0.1
) -> LambdaLR:
    """Multiply each group's lr by step / W during warmup (W = round(warmup_ratio * total_steps)),
    then by (total_steps - step) / (total_steps - W), reaching 0 at total_steps and staying there.

    Same shape as transformers' get_linear_schedule_with_warmup: the factor is 0 at step 0.
    Call scheduler.step() once after each optimizer.step().
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= warmup_ratio <= 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1], got {warmup_ratio}")
    warmup = round(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)
