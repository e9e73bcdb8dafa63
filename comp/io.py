"""Atomic file output, file hashing, and the readers of comp's own JSON and parquet artifacts.

Every artifact is written under a temporary name in its final folder and renamed into place, so
an interrupted or failed command never leaves a half-written file where a good one is expected.
A file that is missing, truncated or foreign anyway (a full disk, a bad copy, an edit) is read
back as a CompError naming the file and the command that rebuilds it: one line, exit code 2.

A write that runs out of disk space (ENOSPC, a quota) ends as `DiskFull`: one line naming the
file, the space it needed where that is known and the space left, with no temporary file behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from comp.errors import CompError

TEMP_MARK = ".tmp-"  # temporary files are .<name>.tmp-<pid> beside their final name
FULL = (errno.ENOSPC, errno.EDQUOT)
FULL_WORDS = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")


def disk_full(error: BaseException | None) -> bool:
    """Whether `error` (or what caused it) is a write that found no space left: an OSError's
    errno, or the message libraries wrap it in (polars: "... (os error 28)")."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in FULL:
            return True
        if any(word in str(error) for word in FULL_WORDS):
            return True
        error = error.__cause__ or error.__context__
    return False


def _megabytes(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


class DiskFull(CompError):
    """A write found the disk full; nothing half-written was left behind."""

    def __init__(self, path: Path, needed: int | None = None) -> None:
        path = Path(path)
        folder = next((p for p in (path.parent, *path.parents) if p.exists()), Path("."))
        free = shutil.disk_usage(folder).free
        what = f"it needed about {_megabytes(needed)}, " if needed else ""
        super().__init__(
            f"{path}: the disk is full ({what}{_megabytes(free)} free on {folder}); nothing was "
            "written. Free some space and run the same command again: it goes on from what is "
            "saved"
        )
        self.path, self.needed = path, needed


@contextmanager
def full_disk_as(path: str | Path, needed: int | None = None) -> Iterator[None]:
    """Turn a full disk while writing `path` into DiskFull."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as error:
        if disk_full(error):
            raise DiskFull(Path(path), needed) from None
        raise


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Remove what killed writers left in `folder` (temporary files of processes that are gone);
    the caller must know no live process writes there. Returns the files removed."""
    removed = []
    for path in Path(folder).glob(f".*{TEMP_MARK}*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextmanager
def atomic_path(path: str | Path, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.
    A full disk is DiskFull, saying `needed` bytes were to be written when it is given."""
    path = Path(path)
    with full_disk_as(path, needed):
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        with full_disk_as(path, needed):
            yield tmp
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    """A matplotlib figure as a PNG at `path`, written whole or not at all, then closed."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds:
    a failed or killed writer never leaves half a folder at `path`."""
    path = Path(path)
    tmp = _temp_name(path)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with full_disk_as(path):
            yield tmp
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_all_atomically(writers: Mapping[str | Path, Callable[[Path], None]]) -> None:
    """Write several files as one step: every writer fills its temporary file first, and only
    when all have succeeded are they renamed into place. A failure leaves none of them behind."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, write in writers.items():
            path = Path(path)
            with full_disk_as(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = _temp_name(path)
                temps.append((tmp, path))
                write(tmp)
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomically(path: str | Path, value: dict) -> None:
    write_text_atomically(path, json.dumps(value, indent=1))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_folder(folder: str | Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over every file of `folder` (recursively, in name order): relative names and
    contents, files and folders named in `exclude` left out."""
    folder = Path(folder)
    digest = hashlib.sha256()

    def kept(path: Path) -> bool:
        return path.is_file() and not set(path.relative_to(folder).parts) & set(exclude)

    for path in sorted(p for p in folder.rglob("*") if kept(p)):
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\x00")
        digest.update(sha256_file(path).encode("ascii"))
    return digest.hexdigest()


class UnreadableFile(CompError):
    """An artifact that exists but cannot be read back; says which and why."""

    def __init__(self, path: Path, reason: str, rebuild: str) -> None:
        super().__init__(f"{path}: unreadable ({reason}); run `{rebuild}`")
        self.path, self.reason = path, reason


def read_json(path: str | Path, rebuild: str) -> dict:
    """A JSON object written by comp; `rebuild` is the command that writes it again."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompError(f"{path}: not found; run `{rebuild}` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableFile(path, str(exc), rebuild) from None
    if not isinstance(value, dict):
        raise UnreadableFile(path, "not a JSON object", rebuild)
    return value


def read_npz(path: str | Path, rebuild: str) -> dict:
    """Every array of an .npz file comp wrote, read without pickle (an object array is
    refused); UnreadableFile, naming `rebuild`, for a file that is not such."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableFile(Path(path), reason, rebuild) from None


def read_parquet(path: str | Path, rebuild: str, columns: list[str] | None = None):
    """A parquet file written by comp (a polars DataFrame), with at least `columns`."""
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise CompError(f"{path}: not found; run `{rebuild}` first")
    try:
        return pl.read_parquet(path, columns=columns)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise UnreadableFile(path, str(exc).strip().splitlines()[0], rebuild) from None
