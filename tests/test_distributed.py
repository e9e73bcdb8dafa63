"""The multi-process plumbing, on the CPU: torchrun ranks with the gloo backend for one fold, and
one process per (pretend) GPU for several folds."""

import json
import os
import socket
import subprocess
import sys

import polars as pl

from comp.neural.distributed import Dist, shard
from tests.conftest import demo_config, write_config_file

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(tmp_path, config):
    return write_config_file(tmp_path / "config.yaml", config)


def run_train(launcher: list[str], config_path: str, options: list[str]):
    """`python <launcher> train --config ... <options>` as a subprocess; must succeed."""
    command = [sys.executable, *launcher, "train", "--config", config_path, *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_shards_partition_a_batch():
    rows = list(range(10))
    parts = [shard(rows, Dist(rank, 3)) for rank in range(3)]
    assert sorted(sum(parts, [])) == rows[:9]  # equal shares: the same number of backwards
    assert [len(p) for p in parts] == [3, 3, 3]
    assert shard(rows, Dist(0, 1)) == rows
    assert [shard([1, 2], Dist(r, 3)) for r in range(3)] == [[], [], []]


def test_torchrun_two_ranks_on_gloo_train_one_fold(demo_root, tmp_path):
    settings = {
        "train.experiment": "ddp",
        "train.steps": 6,
        "train.eval_every": 3,
        "train.checkpoint_every": 3,
    }
    config = demo_config(demo_root, **settings)
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "2"]
    done = run_train(
        [*launcher, "--master_port", str(free_port()), "-m", "comp.cli"],
        write(tmp_path, config),
        ["--fold", "0", "--device", "cpu"],
    )
    assert done.stdout.count("training results") == 1  # rank 0 alone reports
    assert done.stdout.count("fold 0: val macro-F1") == 1  # and writes the fold's outputs
    out = demo_root / "runs" / "ddp" / "fold0"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert [h["step"] for h in metrics["history"]["val"]] == [3, 6]
    oof = pl.read_parquet(out / "oof.parquet")
    folds = pl.read_csv(demo_root / "folds" / "demo.csv")
    assert oof["row"].to_list() == folds.filter(pl.col("fold") == 0)["row"].to_list()
    assert not (out / "checkpoint.pt").exists()


def test_one_process_per_gpu_runs_every_fold(demo_root, tmp_path):
    config = demo_config(
        demo_root, **{"train.experiment": "gpus", "train.steps": 3, "train.eval_every": 3}
    )
    done = run_train(
        ["-m", "comp.cli"],
        write(tmp_path, config),
        ["--fold", "all", "--gpus", "0,1", "--device", "cpu"],
    )
    seen = set()
    for fold in (0, 1):
        folder = demo_root / "runs" / "gpus" / f"fold{fold}"
        seen.add(json.loads((folder / "metrics.json").read_text())["visible_devices"])
        assert (demo_root / "runs" / "gpus" / "launch" / f"fold{fold}.log").is_file()
    assert seen == {"0", "1"}  # each fold's process saw one device of its own
    assert "training results" in done.stdout


def test_a_gpu_id_given_twice_runs_two_folds_at_once_on_it(tmp_path, monkeypatch):
    """`--gpus 0,0`: two processes on one card (an eager step leaves most of a GPU idle)."""

    from rich.console import Console

    import comp.runs.launch as launch

    def fake_fold(config_path, fold, device, force):  # records when it ran, and where
        code = (
            "import os, sys, time; start = time.time(); time.sleep(0.6); "
            f"open(r'{tmp_path}/fold{fold}', 'w').write("
            "f\"{start} {time.time()} {os.environ['CUDA_VISIBLE_DEVICES']}\")"
        )
        return [sys.executable, "-c", code]

    monkeypatch.setattr(launch, "_fold_process", fake_fold)
    codes = launch.train_on_gpus(
        tmp_path / "config.yaml", [0, 1, 2], ["0", "0"], "cuda", False, tmp_path / "logs",
        Console(quiet=True),
    )  # fmt: skip
    assert codes == {0: 0, 1: 0, 2: 0}
    spans = [[float(x) for x in (tmp_path / f"fold{k}").read_text().split()[:2]] for k in range(3)]
    devices = {(tmp_path / f"fold{k}").read_text().split()[2] for k in range(3)}
    assert devices == {"0"}
    overlapping = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert overlapping == 2  # two at a time, never three
