"""A finished fold's classifier reloaded from its folder alone, and its logits for test sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from comp.config import Config
from comp.data import TestData
from comp.kinds.transformer.model import Classifier, build_classifier
from comp.neural.backbone import load_tokenizer
from comp.neural.distributed import resolve_device
from comp.neural.files import BACKBONE
from comp.neural.fold_encoder import load_fold_weights, read_best_model
from comp.neural.inference import Batching, predict_logits
from comp.neural.token_cache import encode_cached


def load_fold_model(
    folder: Path, fold_config: Config, device: torch.device
) -> tuple[Classifier, object]:
    """The best model of a finished fold and its tokenizer, rebuilt from its folder alone
    (`fold_config`: the resolved config saved there)."""
    state = read_best_model(folder, device)
    model = build_classifier(fold_config, pretrained=False, backbone_dir=str(folder / BACKBONE))
    load_fold_weights(model, state, folder, "not this fold's classifier")
    return model.to(device), load_tokenizer(str(folder / BACKBONE))


def predict_fold(
    folder: Path, fold_config: Config, tests: list[TestData], device_name: str, cache_dir: Path
) -> list[np.ndarray]:
    """Logits of a finished fold's best model for each test set."""
    device = resolve_device(device_name)
    model, tokenizer = load_fold_model(Path(folder), fold_config, device)
    m, t = fold_config.model, fold_config.train
    out = []
    for test in tests:
        encoded = encode_cached(
            tokenizer, test.questions, test.answers, m.max_len, m.answer_min_tokens, cache_dir
        )
        rows = np.arange(len(test))
        batching = Batching.of(fold_config, tokenizer.pad_token_id, device)
        logits = predict_logits(model, encoded, rows, batching, t.ldam_s)
        out.append(logits)
    return out
