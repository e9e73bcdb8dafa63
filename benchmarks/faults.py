"""The faults of issue 11, tried as a user meets them, on the demo competition (configs/demo.yaml
in a throw-away workspace): each through the `comp` command line, with its exit code, the line it
printed, how long it took and what was lost. The table goes to BENCHMARKS.md.

    python benchmarks/faults.py
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


def command(work: Path, experiment: str, *args: str) -> list[str]:
    """`comp ARGS` on configs/demo.yaml with every path moved into the workspace."""
    demo = work / "demo"
    tests = ", ".join(
        f"{{name: {name}, path: {demo}/shared_task_test_{name}.csv}}"
        for name in ("public", "private")
    )
    overrides = [
        f"demo.out_dir={demo}",
        f"data.train={demo}/shared_task_train.csv",
        f"data.test_sets=[{tests}]",
        f"data.solution={demo}/solution.csv",
        f"folds.dir={work}/folds",
        f"model.backbone={work}/tiny",
        f"train.runs_dir={work}/runs",
        f"train.experiment={experiment}",
        "train.checkpoint_every=50",
    ]
    argv = [sys.executable, "-m", "comp", *args, "--config", "configs/demo.yaml"]
    for override in overrides:
        argv += ["--set", override]
    return argv


NOTABLE = re.compile(r"error|unreadable|resuming|retraining|restarting|diverged|val macro-F1")


def notable(output: str) -> str:
    """The lines that say what happened (errors, recoveries, the fold's score)."""
    lines = output.splitlines()
    return " / ".join(x.strip() for x in lines if NOTABLE.search(x) and not x.startswith("┃"))


def comp(work: Path, *args: str, experiment: str = "faults") -> tuple[int, str, float]:
    """(exit code, the notable lines printed, seconds) of one `comp` command in the workspace."""
    started = time.perf_counter()
    done = subprocess.run(
        command(work, experiment, *args), cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    return done.returncode, notable(done.stdout + done.stderr), time.perf_counter() - started


def prepare(work: Path) -> None:
    for args in (("demo-data",), ("backbone", "tiny", str(work / "tiny")), ("make-folds",)):
        code, line, _ = comp(work, *args)
        assert code == 0, line


def kill_while_training(work: Path, experiment: str, after_checkpoints: int) -> float:
    """Start `comp train --fold 0`, kill -9 it once it has saved that many checkpoints (one
    every 50 steps); returns the seconds it ran."""
    import torch

    checkpoint = work / "runs" / experiment / "fold0" / "checkpoint.pt"
    argv = command(work, experiment, "train", "--fold", "0")
    process = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    while process.poll() is None:
        time.sleep(0.2)
        try:
            step = torch.load(checkpoint, weights_only=True)["step"]
        except Exception:  # noqa: BLE001 (not there yet, or being written)
            continue
        if step >= 50 * after_checkpoints:
            process.send_signal(signal.SIGKILL)
            process.wait()
            break
    return time.perf_counter() - started


def second_process_on_a_busy_fold(work: Path) -> tuple[int, str, float]:
    """A `comp train --fold 0` started while another trains the same fold: (its exit code and
    line, its seconds); the first must still finish with exit 0."""
    lock = work / "runs" / "busy" / "fold0" / ".lock"
    first = subprocess.Popen(
        command(work, "busy", "train", "--fold", "0"),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
        time.sleep(0.05)
    result = comp(work, "train", "--fold", "0", experiment="busy")
    output, _ = first.communicate()
    assert first.returncode == 0, output
    return result[0], result[1] + f" (the first: exit {first.returncode})", result[2]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="comp-faults-") as tmp:
        work = Path(tmp)
        prepare(work)

        code, line, seconds = comp(work, "train", "--fold", "0", "--set", "train.lr=1e4",
                                   "--set", "train.fgm=false", experiment="diverge")  # fmt: skip
        rows.append(("diverging run (train.lr=1e4, FGM off)", code, line, seconds))

        killed_after = kill_while_training(work, "killed", after_checkpoints=2)
        checkpoint = work / "runs" / "killed" / "fold0" / "checkpoint.pt"
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
        code, line, seconds = comp(work, "train", "--fold", "0", experiment="killed")
        what = f"kill -9 after {killed_after:.0f} s, checkpoint.pt cut to half, rerun"
        rows.append((what, code, line, seconds))

        code, _, _ = comp(work, "train", "--fold", "all", "--set", "model.kind=tfidf",
                          experiment="tfidf")  # fmt: skip
        metrics = work / "runs" / "tfidf" / "fold2" / "metrics.json"
        metrics.write_bytes(metrics.read_bytes()[:40])
        code, line, seconds = comp(work, "ensemble", "tfidf", experiment="tfidf")
        rows.append(("metrics.json cut to 40 bytes, comp ensemble", code, line, seconds))
        code, line, seconds = comp(work, "train", "--set", "model.kind=tfidf", experiment="tfidf")
        rows.append(("the same, comp train", code, line, seconds))

        rows.append(
            ("a second comp train on a fold in training",) + second_process_on_a_busy_fold(work)
        )

    table = Table(title="faults on the demo (configs/demo.yaml), through the command line")
    for column in ("fault", "exit", "what it printed", "s"):
        table.add_column(column, overflow="fold")
    for what, code, line, seconds in rows:
        table.add_row(what, str(code), line, f"{seconds:.1f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
