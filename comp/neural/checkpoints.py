"""A fold's training checkpoints and best model: saving them (the last two checkpoints are
kept), reading them back (an unreadable file is reported, never a traceback), and the RNG
states that make a resumed run replay an uninterrupted one exactly (on a CPU).

Files are read with `torch.load(weights_only=True)`: tensors, numbers, strings and plain
containers only, so a planted file (a shared fold folder, a downloaded model) cannot run code
when it is loaded; it is reported as unreadable instead. Everything comp saves is of those types
(the numpy RNG state is kept as a tensor)."""

from __future__ import annotations

import os
import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from comp.io import atomic_path


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG's state in types `weights_only` loading accepts."""
    kind, key, position, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(key.astype(np.int64)), position, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, key, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def tensor_bytes(obj) -> int:
    """The bytes of the tensors in `obj` (nested dicts, lists, tuples): about what saving it
    writes."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def save_torch(obj, path: Path) -> None:
    """torch.save through a Python file (a full disk is then an OSError, DiskFull here, not a
    C++ RuntimeError), written atomically."""
    with atomic_path(path, tensor_bytes(obj)) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load_torch(path: Path, device: torch.device | str = "cpu", mmap: bool = False):
    """A file `save_torch` wrote; never runs code (`weights_only`), whatever the file holds."""
    return torch.load(path, map_location=device, weights_only=True, mmap=mmap)


class UnreadableCheckpoint(Exception):
    """A checkpoint or best-model file that cannot be loaded; the message says why."""


def read_state(path: Path, keys: tuple[str, ...], device: torch.device | str = "cpu") -> dict:
    """A dict saved by `save_torch` holding `keys`; UnreadableCheckpoint if the file is
    truncated, foreign or lacks a key (torch raises many types for a bad file)."""
    try:
        with warnings.catch_warnings():  # about pickle protocols, in a file it then refuses
            warnings.simplefilter("ignore", UserWarning)
            state = load_torch(path, device)
    except pickle.UnpicklingError:  # weights_only refused a type: not a file comp wrote
        raise UnreadableCheckpoint(
            f"{path} is unreadable (it holds objects other than tensors and numbers: not "
            "written by this version of comp, or planted; it was not loaded)"
        ) from None
    except Exception as exc:  # noqa: BLE001 (EOFError, RuntimeError, ...)
        text = str(exc).strip()
        reason = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__
        raise UnreadableCheckpoint(f"{path} is unreadable ({reason})") from None
    missing = [key for key in keys if not isinstance(state, dict) or key not in state]
    if missing:
        raise UnreadableCheckpoint(f"{path} is not a checkpoint of this kind (no {missing[0]!r})")
    return state


def save_checkpoint(state: dict, path: Path, previous: Path) -> None:
    """Save `state` to `path`, keeping the checkpoint it replaces as `previous`."""
    if path.is_file():
        os.replace(path, previous)
    save_torch(state, path)


def read_newest_state(
    newest: Path,
    previous: Path,
    keys: tuple[str, ...],
    device: torch.device | str = "cpu",
    remove_unreadable: bool = True,
) -> tuple[dict | None, list[str]]:
    """The state of the newest readable checkpoint of the two (or None), and a line for each
    unreadable one; an unreadable newest one is removed (unless not `remove_unreadable`: a
    process that does not write), so that the next save keeps the good one as previous."""
    problems = []
    for path in (newest, previous):
        if not path.is_file():
            continue
        try:
            return read_state(path, keys, device), problems
        except UnreadableCheckpoint as problem:
            fallback = "trying the previous one" if path == newest else "no other is left"
            problems.append(f"{problem}; {fallback}")
            if path == newest and remove_unreadable:
                newest.unlink(missing_ok=True)
    return None, problems
