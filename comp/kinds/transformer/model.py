"""The classifier: a transformer backbone, dropout, and a head (linear or cosine) on the [CLS]
vector or on the mean of the real tokens' vectors (`model.pooling`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineHead(nn.Module):
    """Cosine-normalised linear layer: cos(x, w_c) for each class, in [-1, 1].

    Use with a logit scale s (Cao et al. use 30) in the loss; the head itself applies no scale.
    """

    def __init__(self, in_features: int, num_classes: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # same init as nn.Linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x, dim=-1, eps=self.eps)
        w = F.normalize(self.weight, dim=-1, eps=self.eps)
        return x @ w.t()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}"


class Classifier(nn.Module):
    def __init__(
        self, backbone: nn.Module, num_labels: int, dropout: float, head: str, pooling: str = "cls"
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        hidden = backbone.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.head = (
            CosineHead(hidden, num_labels) if head == "cosine" else nn.Linear(hidden, num_labels)
        )

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        hidden = out.last_hidden_state
        # The head runs in fp32 even under bf16 autocast: bf16 logits tie and flip argmaxes
        # (on the demo, 2.7 % of rows got a top-1 tie and 1.4 % another argmax).
        with torch.autocast(hidden.device.type, enabled=False):
            if self.pooling == "mean":  # over real tokens ([CLS] and [SEP] included)
                # [B, T], or [B, 1, 1, T] as the training step passes it; none: every token
                if attention_mask is None:
                    attention_mask = torch.ones(hidden.shape[:2], device=hidden.device)
                mask = attention_mask.reshape(hidden.shape[0], -1, 1).float()
                pooled = (hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            else:
                pooled = hidden[:, 0].float()
            return self.head(self.dropout(pooled))


def build_classifier(config, pretrained: bool, backbone_dir: str | None = None) -> Classifier:
    """`pretrained`: weights from model.backbone (training); else the architecture saved in
    `backbone_dir`, to be filled from a checkpoint (inference)."""
    from comp.neural.backbone import backbone_from_config, load_pretrained_backbone

    if pretrained:
        backbone = load_pretrained_backbone(config.model.backbone)
    else:
        backbone = backbone_from_config(backbone_dir)
    model = config.model
    return Classifier(backbone, config.data.num_labels, model.dropout, model.head, model.pooling)
