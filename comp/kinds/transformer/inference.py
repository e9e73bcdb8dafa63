"""Logits from a classifier, and a finished fold's model reloaded from its folder alone."""

from __future__ import annotations

import shutil
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from comp.config import Config
from comp.data import TestData
from comp.errors import CompError
from comp.kinds.transformer.backbone import load_tokenizer
from comp.kinds.transformer.batches import collate
from comp.kinds.transformer.checkpoints import UnreadableCheckpoint, read_state
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


@dataclass(frozen=True)
class Batching:
    """How inference batches rows: rows a batch, the pad id, the padding multiple (training's
    widths: few shapes on a GPU) and the width it never pads past (`model.max_len`, the
    positions the model has), the device, precision and attention kernels."""

    batch_size: int
    pad_id: int
    device: torch.device
    precision: str = "bf16"
    attention: str = "default"
    multiple: int = 1
    limit: int = 0  # 0: no limit

    @classmethod
    def of(cls, config: Config, pad_id: int, device: torch.device) -> Batching:
        t = config.train
        return cls(t.eval_batch_size, pad_id, device, t.precision, t.attention, t.pad_multiple,
                   config.model.max_len)  # fmt: skip


@torch.no_grad()
def predict_logits(
    model: Classifier, encoded: EncodedTexts, rows: np.ndarray, batching: Batching, scale: float
) -> np.ndarray:
    """Logits (times the loss's scale s) of `rows`, in the order given; batched by length."""

    def logits(inputs: dict) -> torch.Tensor:
        with device_context(batching.device, batching.precision, batching.attention):
            return scale * model(**inputs).float()

    return _in_length_order(model, encoded, rows, batching, logits)


@torch.no_grad()
def embed_rows(
    model: Classifier,
    encoded: EncodedTexts,
    rows: np.ndarray,
    batching: Batching,
    pooling: str = "cls",
) -> np.ndarray:
    """The encoder's vectors of `rows` (the [CLS] vector, or the mean over real tokens), L2
    normalised, float32 [rows, hidden]: what kNN retrieval compares by cosine."""

    def vectors(inputs: dict) -> torch.Tensor:
        with device_context(batching.device, batching.precision, batching.attention):
            hidden = model.backbone(**inputs).last_hidden_state.float()
        if pooling == "mean":
            mask = inputs["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            pooled = hidden[:, 0]
        return torch.nn.functional.normalize(pooled, dim=-1)

    return _in_length_order(model, encoded, rows, batching, vectors)


def _in_length_order(model, encoded, rows, batching: Batching, compute) -> np.ndarray:
    """`compute(inputs)` of every batch of `rows`, batched in length order, returned as one
    float32 array in the order of `rows`."""
    model.eval()
    rows = np.asarray(rows)
    order = np.argsort(encoded.lengths[rows], kind="stable")
    b, out = batching, None
    for start in range(0, len(order), b.batch_size):
        part = order[start : start + b.batch_size]
        inputs = collate(encoded, rows[part], b.pad_id, b.device, b.multiple, b.limit)
        values = compute(inputs).cpu().numpy()
        if out is None:
            out = np.zeros((len(rows), values.shape[1]), dtype=np.float32)
        out[part] = values
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


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
    try:
        saved = read_state(folder / BEST_MODEL, ("model",), device)
        model.load_state_dict(saved["model"])
    except (UnreadableCheckpoint, RuntimeError) as problem:  # RuntimeError: other tensors
        retrain = f"comp train --fold {folder.name.removeprefix('fold')} --force"
        raise CompError(f"{str(problem).splitlines()[0]}; retrain: `{retrain}`") from None
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
