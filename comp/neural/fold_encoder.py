"""A fine-tuned fold's encoder: what a neural kind saves beside its weights so that the fold
reloads from its folder alone, and the encoder reloaded from there to embed rows (kNN retrieval
uses a finished transformer fold's encoder without the transformer kind's classifier).

A fold folder holding `best_model.pt` (a classifier's state dict under "model", its encoder's
weights under the prefix "backbone.") and `backbone/` (the encoder's config and tokenizer) is
such a fold."""

from __future__ import annotations

from pathlib import Path

import torch

from comp.errors import CompError
from comp.layout import retrain_command
from comp.neural.backbone import backbone_from_config, load_tokenizer, write_backbone_folder
from comp.neural.checkpoints import UnreadableCheckpoint, read_state
from comp.neural.files import BACKBONE, BEST_MODEL

ENCODER_PREFIX = "backbone."  # the encoder's weights in a classifier's state dict


def save_backbone_files(encoder: torch.nn.Module, tokenizer, folder: Path) -> None:
    """The encoder's config and tokenizer beside the weights: a fold reloads from its folder.
    Written whole or not at all; replaces what an earlier attempt left there."""

    def write(tmp: Path) -> None:
        encoder.config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    write_backbone_folder(folder, write)


def read_best_model(folder: Path, device: torch.device | str) -> dict:
    """The state dict of a finished fold's best model; a CompError naming the file and the
    command that retrains the fold when it is missing, unreadable or planted."""
    if not (folder / BEST_MODEL).is_file():
        raise CompError(f"{folder}: no {BEST_MODEL}; train this fold first (`comp train`)")
    try:
        return read_state(folder / BEST_MODEL, ("model",), device)["model"]
    except UnreadableCheckpoint as problem:
        raise CompError(f"{problem}; retrain: `{retrain_command(folder)}`") from None


def load_fold_encoder(folder: Path, device: torch.device) -> tuple[torch.nn.Module, object]:
    """The fine-tuned encoder of a finished fold (eval mode) and its tokenizer."""
    state = read_best_model(folder, device)
    encoder = backbone_from_config(folder / BACKBONE)
    weights = {
        name.removeprefix(ENCODER_PREFIX): tensor
        for name, tensor in state.items()
        if name.startswith(ENCODER_PREFIX)
    }
    load_fold_weights(
        encoder, weights, folder, f"its encoder weights do not fit {folder / BACKBONE}"
    )
    return encoder.to(device).eval(), load_tokenizer(str(folder / BACKBONE))


def load_fold_weights(module: torch.nn.Module, state: dict, folder: Path, misfit: str) -> None:
    """`state` into `module`; weights of other shapes or names end in one line naming the fold's
    best model, `misfit` (what does not fit what) and the command that retrains the fold."""
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CompError(
            f"{folder / BEST_MODEL}: {misfit} ({first}); retrain: `{retrain_command(folder)}`"
        ) from None
