"""The classifier: a transformer backbone, dropout, and a head on the [CLS] vector."""

from __future__ import annotations

import torch
from torch import nn

from comp.losses import CosineHead


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_labels: int, dropout: float, head: str) -> None:
        super().__init__()
        self.backbone = backbone
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
        return self.head(self.dropout(out.last_hidden_state[:, 0]))


def build_classifier(config, pretrained: bool, backbone_dir: str | None = None) -> Classifier:
    """`pretrained`: weights from model.backbone (training); else the architecture saved in
    `backbone_dir`, to be filled from a checkpoint (inference)."""
    from comp.backbone import backbone_from_config, load_pretrained_backbone

    if pretrained:
        backbone = load_pretrained_backbone(config.model.backbone)
    else:
        backbone = backbone_from_config(backbone_dir)
    return Classifier(backbone, config.data.num_labels, config.model.dropout, config.model.head)
