"""Running a model over encoded rows: autocast and the attention kernels on CUDA, how rows are
batched (`Batching`), a classifier's logits and an encoder's pooled vectors, in the rows' order."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from comp.config import Config
from comp.neural.batches import collate
from comp.neural.token_cache import EncodedTexts, encode_cached

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
    model: torch.nn.Module,
    encoded: EncodedTexts,
    rows: np.ndarray,
    batching: Batching,
    scale: float,
) -> np.ndarray:
    """Logits of a classifier (called with input_ids, attention_mask, token_type_ids) times
    `scale` (the loss's s) for `rows`, in the order given; batched by length."""

    def logits(inputs: dict) -> torch.Tensor:
        with device_context(batching.device, batching.precision, batching.attention):
            return scale * model(**inputs).float()

    return _in_length_order(model, encoded, rows, batching, logits)


@torch.no_grad()
def embed_rows(
    encoder: torch.nn.Module,
    encoded: EncodedTexts,
    rows: np.ndarray,
    batching: Batching,
    pooling: str = "cls",
    normalize: bool = True,
    done: Callable[[int], None] | None = None,
) -> np.ndarray:
    """An encoder's (a transformers model's) vectors of `rows`: the [CLS] vector or the mean
    over real tokens, float32 [rows, hidden], L2-normalised unless not `normalize` (cosine
    retrieval compares unit vectors; a linear probe reads them as they are). `done(n)` is told
    the rows embedded so far after every batch (a progress display)."""

    def vectors(inputs: dict) -> torch.Tensor:
        with device_context(batching.device, batching.precision, batching.attention):
            hidden = encoder(**inputs).last_hidden_state.float()
        if pooling == "mean":
            mask = inputs["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            pooled = hidden[:, 0]
        return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled

    return _in_length_order(encoder, encoded, rows, batching, vectors, done)


def _in_length_order(model, encoded, rows, batching: Batching, compute, done=None) -> np.ndarray:
    """`compute(inputs)` of every batch of `rows`, batched in length order, returned as one
    float32 array in the order of `rows`; `done(rows so far)` after each batch."""
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
        if done is not None:
            done(min(start + b.batch_size, len(order)))
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def embed_texts(
    encoder: torch.nn.Module,
    tokenizer,
    questions: list[str],
    answers: list[str],
    config: Config,
    batching: Batching,
    pooling: str,
    cache_dir: Path,
    normalize: bool = True,
    done: Callable[[int], None] | None = None,
    fingerprint: str | None = None,
) -> np.ndarray:
    """`embed_rows` of question/answer pairs, tokenised as `config.model` says (through the
    token cache in `cache_dir`; `fingerprint`: the tokenizer's, when known)."""
    m = config.model
    encoded = encode_cached(
        tokenizer, questions, answers, m.max_len, m.answer_min_tokens, cache_dir, fingerprint
    )
    rows = np.arange(len(questions))
    return embed_rows(encoder, encoded, rows, batching, pooling, normalize, done)
