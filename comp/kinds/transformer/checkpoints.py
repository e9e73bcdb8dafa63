"""A fold's training checkpoint and best model: what they hold, and the RNG states that make a
resumed run replay an uninterrupted one exactly (on a CPU)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from comp.io import atomic_path


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_torch(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: Path, device: torch.device | str = "cpu", mmap: bool = False):
    return torch.load(path, map_location=device, weights_only=False, mmap=mmap)
