"""The GPU session's first-run risks, checked on the CPU: the pre-flight that stops a session
naming what is missing, a failed CUDA graph capture (a stand-in that raises), the benchmark's
results written variant by variant, and workers that start together and outlive a failed one."""

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from rich.console import Console

import comp.kinds.transformer.graphs as graphs
from comp.kinds.transformer.loop import FoldTrainer
from comp.kinds.transformer.run import encode_run
from comp.runs.frame import fold_fingerprint, load_run_inputs
from tests.conftest import demo_config

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def load_train_gpu():
    spec = importlib.util.spec_from_file_location("train_gpu", ROOT / "benchmarks" / "train_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_preflight_names_what_is_missing_and_stops_the_session(tmp_path):
    repo, shadow, out = tmp_path / "repo", tmp_path / "shadow", tmp_path / "out"
    (repo / "benchmarks").mkdir(parents=True)
    shutil.copy(ROOT / "benchmarks" / "gpu_session.sh", repo / "benchmarks")
    shutil.copy(ROOT / "pyproject.toml", repo)
    (shadow / "polars").mkdir(parents=True)  # polars 2.x without its runtime package
    (shadow / "polars" / "__init__.py").write_text(
        "raise ImportError('polars-runtime-32 is not installed')\n"
    )
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(shadow),
        "OUT": str(out),
    }
    done = subprocess.run(
        ["bash", str(repo / "benchmarks" / "gpu_session.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "MISSING  polars: ImportError: polars-runtime-32 is not installed" in said
    assert "pre-flight failed, nothing else runs; missing: polars, comp.runs.frame" in said
    assert "ok       torch" in said  # what is there is said too
    steps = (out / "steps.txt").read_text().splitlines()
    assert len(steps) == 1 and steps[0].split()[:3] == ["preflight", "exit", "1"], steps
    assert "pre-flight failed" in (out / "session.log").read_text()


class StandInCuda:
    """torch.cuda as StepGraphs uses it, on a CPU: streams that do nothing, and a capture that
    fails as one can on a GPU."""

    class Stream:
        def wait_stream(self, other) -> None:
            pass

    class CUDAGraph:
        def reset(self) -> None:
            pass

    def stream(self, stream):
        return contextlib.nullcontext()

    def current_stream(self):
        return self.Stream()

    def set_stream(self, stream) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def graph(self, graph, pool=None):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


def test_a_failed_capture_turns_graphs_off_for_the_process(
    demo_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(graphs, "_off_reason", None)
    monkeypatch.setattr(graphs, "torch", SimpleNamespace(cuda=StandInCuda()))
    config = demo_config(demo_root, **{"train.experiment": "capture_fails", "train.steps": 4})
    encoded = encode_run(load_run_inputs(config, fold_fingerprint(config)))
    weights = {}
    for name in ("eager", "graphed"):
        t = FoldTrainer(encoded, 0, tmp_path / name, CPU, Console(quiet=True))
        t.model.eval()  # no dropout: the two runs compare exactly
        if name == "graphed":
            t.stepper.graphs = graphs.StepGraphs(t.stepper)
        for _ in range(4):  # warm-up, the capture that fails, then eager steps
            t.train_step(t.train_rows[: config.train.batch_size], epoch=1)
        weights[name] = {n: p.detach().clone() for n, p in t.model.named_parameters()}

    said = capsys.readouterr().err
    assert "CUDA graphs off for this process: capture of step shape (1, 32, " in said
    assert "operation not permitted when stream is capturing; training goes on eagerly" in said
    assert said.count("CUDA graphs off") == 1
    assert graphs.graphs_off().startswith("capture of step shape (1, 32, ")
    assert not graphs.graphs_wanted("true", torch.device("cuda"), 1)  # no trainer captures again
    assert t._graph_counts() == {"captured": 0, "replays": 0, "failed": 1}
    for name, value in weights["eager"].items():  # every step trained once, none lost or doubled
        torch.testing.assert_close(weights["graphed"][name], value, rtol=0, atol=0, msg=name)


def result(samples_per_s: float, **extra) -> dict:
    """A variant's figures as train_gpu.measure writes them (CPU: no GPU-side counts)."""
    return {
        "samples_per_s": samples_per_s,
        "wall_ms": 80.0,
        "gpu_ms": None,
        "fold_min": 11.0,
        "peak_mib": 0.0,
        "eval_s": 12.0,
        "graphs": None,
        "graphs_off": None,
        **extra,
    }


def test_each_variant_is_written_as_it_ends(tmp_path):
    train_gpu = load_train_gpu()
    path, head = tmp_path / "train_gpu.json", {"meta": {"device": "cpu", "batch": 64}}

    def measure(name: str) -> dict:
        written = json.loads(path.read_text())["variants"]
        if name == "syncfree32":
            assert written == {"graphs16": {"skipped": "CUDA graphs need a GPU"}}
            return result(100.0)
        assert list(written) == ["graphs16", "syncfree32"]
        raise RuntimeError("CUDA out of memory")

    train_gpu.run_variants(["graphs16", "syncfree32", "padded512"], measure, path, head, False)
    variants = json.loads(path.read_text())["variants"]
    assert variants["padded512"] == {"error": "RuntimeError: CUDA out of memory"}
    assert variants["syncfree32"]["samples_per_s"] == 100.0
    assert [p.name for p in tmp_path.iterdir()] == ["train_gpu.json"]  # no temporary file left

    variants["graphs32"] = result(300.0, graphs_off="capture of step shape (1, 64, 96) failed: x")
    path.write_text(json.dumps({**head, "variants": variants}))
    text = train_gpu.figures(tmp_path)
    assert "| graphs16 | CUDA graphs need a GPU |" in text
    assert "| syncfree32 | 100.0 | 80.0 |" in text
    assert "| padded512 | RuntimeError: CUDA out of memory |" in text
    assert "| off: capture of step shape (1, 64, 96) failed: x |" in text
    assert "extrapolated" in text


def test_workers_start_together_and_outlive_a_failed_one(tmp_path):
    train_gpu = load_train_gpu()
    worker = (
        "import json, sys, time; sys.path.insert(0, {bench!r}); import train_gpu; "
        "time.sleep({late}); "
        "train_gpu.wait_for_all(train_gpu.Path({barrier!r}), {rank}, 3, timeout_s=60); "
        "open({result!r}, 'w').write(json.dumps({{'started': time.time()}}))"
    )
    commands = [[sys.executable, "-c", "import sys; sys.exit('boom before the barrier')"]]
    for rank in (1, 2):
        code = worker.format(
            bench=str(ROOT / "benchmarks"),
            barrier=str(tmp_path),
            rank=rank,
            late=2.0 if rank == 2 else 0.0,  # rank 1 must wait for it at the barrier
            result=str(tmp_path / f"result.{rank}.json"),
        )
        commands.append([sys.executable, "-c", code])
    started = time.monotonic()
    results = train_gpu.run_workers(commands, tmp_path)
    assert time.monotonic() - started < 60  # the survivors did not wait out the barrier
    assert results[0]["error"] == "exit 1: boom before the barrier"
    assert abs(results[1]["started"] - results[2]["started"]) < 0.5
