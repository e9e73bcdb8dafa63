"""Logits from a classifier, and a finished fold's model reloaded from its folder alone."""

from __future__ import annotations

import shutil
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from comp.config import Config
from comp.data import TestData
from comp.errors import CompError
from comp.kinds.transformer.backbone import load_tokenizer
from comp.kinds.transformer.batches import collate
from comp.kinds.transformer.checkpoints import load_torch
from comp.kinds.transformer.distributed import resolve_device
from comp.kinds.transformer.files import BACKBONE, BEST_MODEL
from comp.kinds.transformer.model import Classifier, build_classifier
from comp.kinds.transformer.token_cache import EncodedTexts, encode_cached

# train.attention -> the SDPA backends allowed on CUDA, in torch's order of preference among them
ATTENTION_BACKENDS = {
    "efficient": ("EFFICIENT_ATTENTION", "MATH"),
    "flash": ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH"),  # flash takes no padding mask
    "cudnn": ("CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "MATH"),
    "math": ("MATH",),
    "default": (),  # whatever the installed torch and cuDNN prefer
}


def autocast(device: torch.device, precision: str = "bf16"):
    """bf16 autocast on CUDA unless `precision` is fp32; CPUs compute in fp32."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@contextmanager
def device_context(device: torch.device, precision: str = "bf16", attention: str = "default"):
    """Autocast as `precision` says and, on CUDA, the attention kernels pinned to
    `ATTENTION_BACKENDS[attention]`: recent torch puts cuDNN first on sm90, whose execution plan
    is built again for every new (batch, length) shape."""
    backends = ATTENTION_BACKENDS[attention] if device.type == "cuda" else ()
    with ExitStack() as stack:
        stack.enter_context(autocast(device, precision))
        if backends:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel([getattr(SDPBackend, name) for name in backends]))
        yield


@torch.no_grad()
def predict_logits(
    model: Classifier,
    encoded: EncodedTexts,
    rows: np.ndarray,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    scale: float,
    precision: str = "bf16",
    attention: str = "default",
    multiple: int = 1,
) -> np.ndarray:
    """Logits (times the loss's scale s) of `rows`, in the order given; batched by length, each
    batch padded to a multiple of `multiple` (training's widths: few shapes on a GPU)."""
    model.eval()
    rows = np.asarray(rows)
    order = np.argsort(encoded.lengths[rows], kind="stable")
    out = np.zeros((len(rows), model.head.weight.shape[0]), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        part = order[start : start + batch_size]
        inputs = collate(encoded, rows[part], pad_id, device, multiple)
        with device_context(device, precision, attention):
            logits = model(**inputs)
        out[part] = (scale * logits.float()).cpu().numpy()
    return out


def save_backbone_files(model: Classifier, tokenizer, folder: Path) -> None:
    """The backbone's config and tokenizer beside the weights: a fold reloads from its folder.
    Replaces what an earlier attempt left there (the backbone may have changed since)."""
    shutil.rmtree(folder, ignore_errors=True)
    model.backbone.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load_fold_model(
    folder: Path, fold_config: Config, device: torch.device
) -> tuple[Classifier, object]:
    """The best model of a finished fold and its tokenizer, rebuilt from its folder alone
    (`fold_config`: the resolved config saved there)."""
    if not (folder / BEST_MODEL).is_file():
        raise CompError(f"{folder}: no {BEST_MODEL}; train this fold first (`comp train`)")
    model = build_classifier(fold_config, pretrained=False, backbone_dir=str(folder / BACKBONE))
    saved = load_torch(folder / BEST_MODEL, device)
    model.load_state_dict(saved["model"])
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
        pad_id = tokenizer.pad_token_id
        logits = predict_logits(
            model,
            encoded,
            rows,
            t.eval_batch_size,
            pad_id,
            device,
            t.ldam_s,
            t.precision,
            t.attention,
            t.pad_multiple,
        )
        out.append(logits)
    return out
