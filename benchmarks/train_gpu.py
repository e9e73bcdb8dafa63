"""Training speed of the paper's recipe on one GPU, variant by variant (issues 12 and 22).

An ARBERTv2-shaped model (12 layers, hidden 768, vocab 100,000, 512 positions; random init),
batch 64, bf16, FGM and LDAM-DRW on, over a synthetic training set with the real task's length
mix: the full-size demo's pair lengths scaled to a mean of about 75 tokens, capped at 512 (token
ids are random: speed does not depend on them). Each variant runs `comp`'s own `FoldTrainer`:
every width its epoch meets is warmed first (with graphs: warmed and captured), then `--steps`
timed steps, then a profiled few steps.

Variants, in the order they run (graphs first: a time limit cuts the least wanted):
    graphs16      the sync-free step as CUDA graphs, lengths rounded up to 16
    graphs32      the same, rounded up to 32 (the default padding)
    syncfree32    the sync-free step with eager launches (the default step)
    padded512     the notebook habit: the eager step, random batches padded to 512
    eager_exact   the step before issue 12, exact lengths (--only: its ~400 widths take a while)

Per variant, in train_gpu.json (rewritten after each): samples/s; wall ms a step; GPU ms a step
by CUDA events around each step (with graphs the GPU's busy time, eagerly at least that) and the
kernels' own ms a step (profiler), which say whether the host or the GPU bounds the step;
launches and host syncs a step; peak memory; graph captures, or why graphs went off; minutes a
fold, extrapolated: timed step time x 8,000 plus one measured evaluation x 16 and the test logits.
`--concurrent N`: N processes training at once on the card, timed windows started together
(concurrent.json), and 5 folds extrapolated from their joint rate. Then the first call at a new
width per attention backend.

    python benchmarks/train_gpu.py --out DIR            # what benchmarks/gpu_session.sh runs
    python benchmarks/train_gpu.py --only graphs32 --steps 400
    python benchmarks/train_gpu.py --smoke              # tiny shapes, any machine
    python benchmarks/train_gpu.py --figures DIR        # the named figures from DIR's files
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

import comp.kinds.transformer.loop as loop_module
from comp.data import TestData, TrainData
from comp.demo.generator import generate_demo
from comp.io import write_json_atomically as write_json
from comp.kinds import RunInputs, load_config
from comp.kinds.transformer.graphs import graphs_off
from comp.kinds.transformer.loop import EncodedRun, FoldTrainer
from comp.neural.backbone import quiet_transformers, train_wordpiece
from comp.neural.encoding import padded_width
from comp.neural.inference import Batching, predict_logits
from comp.neural.token_cache import EncodedTexts
from comp.text import split_qa

ROOT = Path(__file__).resolve().parents[1]
FOLD_STEPS, EVALUATIONS, TEST_ROWS = 8000, 16, 18_634
VARIANTS = {
    "graphs16": {"train.step": "sync_free", "train.cuda_graphs": "true", "train.pad_multiple": 16},
    "graphs32": {"train.step": "sync_free", "train.cuda_graphs": "true"},
    "syncfree32": {"train.step": "sync_free", "train.cuda_graphs": "false"},
    "padded512": {"train.step": "eager", "train.pad_multiple": 512, "train.attention": "default"},
    "eager_exact": {"train.step": "eager", "train.pad_multiple": 1, "train.attention": "default"},
}
DEFAULT_VARIANTS = ["graphs16", "graphs32", "syncfree32", "padded512"]
CUDA_ONLY = {"graphs16", "graphs32"}
DEFAULTS = {"train.pad_multiple": 32, "train.attention": "efficient"}
EXTRAPOLATED = "extrapolated: timed steps x 8,000 + measured evaluation time x 16 evaluations"


# ---------------------------------------------------------------------------------------------
# The workspace: a backbone folder and synthetic data, saved so that worker processes reload them


def pair_lengths(mean_tokens: float, max_len: int, smoke: bool) -> np.ndarray:
    """Token counts with the full-size demo's length profile, scaled to `mean_tokens`."""
    demo = generate_demo(scale=0.05 if smoke else 1.0, seed=42)
    chars = np.asarray([len(text) for text in demo.train["text"].to_list()], dtype=np.float64)
    return np.clip(np.round(chars * mean_tokens / chars.mean()), 8, max_len).astype(np.int64)


def synthetic_texts(lengths: np.ndarray, vocab: int, seed: int) -> EncodedTexts:
    """Random token ids with these lengths: [CLS] ids [SEP] ids [SEP], two segments."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = rng.integers(5, vocab, offsets[-1]).astype(np.int32)
    ids[offsets[:-1]] = 2  # [CLS]
    types = np.zeros(offsets[-1], dtype=np.int8)
    for start, length in zip(offsets[:-1], lengths, strict=True):
        types[start + length // 2 : start + length] = 1
    return EncodedTexts(ids, types, offsets)


def build_workspace(work: Path, smoke: bool) -> dict:
    """The backbone folder and the lengths under `work`, once; returns what they are."""
    if (work / "meta.json").is_file():
        return json.loads((work / "meta.json").read_text())
    from transformers import BertConfig, BertModel

    quiet_transformers()
    max_len, vocab = (128, 4000) if smoke else (512, 100_000)
    sizes = (
        dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
        if smoke
        else dict(
            hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
        )
    )
    config = BertConfig(vocab_size=vocab, max_position_embeddings=512, **sizes)
    BertModel(config, add_pooling_layer=False).save_pretrained(work / "backbone")
    demo = generate_demo(scale=0.02, seed=1).train["text"].to_list()
    texts = [" ".join(split_qa(t, "السؤال", "الجواب")) for t in demo]
    train_wordpiece(texts, 2000, max_len).save_pretrained(work / "backbone")
    lengths = pair_lengths(75.0, max_len, smoke)
    np.save(work / "lengths.npy", lengths)
    meta = {
        "max_len": max_len,
        "vocab": vocab,
        "rows": len(lengths),
        "mean_tokens": float(lengths.mean()),
        "smoke": smoke,
    }
    (work / "meta.json").write_text(json.dumps(meta))
    return meta


def load_data(work: Path, config, meta: dict) -> EncodedRun:
    from comp.neural.backbone import load_tokenizer

    lengths = np.load(work / "lengths.npy")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, config.data.num_labels, len(lengths))
    folds = rng.integers(0, 5, len(lengths))
    names = [str(i) for i in range(config.data.num_labels)]
    train = TrainData(work, "synthetic", [], [], labels, names)
    test_lengths = rng.choice(lengths, size=min(TEST_ROWS, len(lengths)))
    test = TestData("test", work, [str(i) for i in range(len(test_lengths))], [], [])
    inputs = RunInputs(config, train, [test], folds, "synthetic", "synthetic", work / "cache")
    encoded_test = synthetic_texts(test_lengths, meta["vocab"], 2)
    tokenizer = load_tokenizer(str(work / "backbone"))
    return EncodedRun(inputs, tokenizer, synthetic_texts(lengths, meta["vocab"], 1), [encoded_test])


def variant_config(work: Path, variant: str, batch: int, max_len: int):
    settings = {
        "model.backbone": str(work / "backbone"),
        "model.max_len": max_len,
        "train.runs_dir": str(work / "runs"),
        "train.experiment": variant,
        "train.batch_size": batch,
        "train.lr": 5e-5,
        "train.fgm": True,
        "train.fgm_eps": 0.2,
        "train.drw_start_epoch": 0,  # the LDAM-DRW phase: the heavier loss
        "train.steps": 100_000,
        "train.eval_every": 100_000,
        "train.checkpoint_every": 100_000,
        "train.log_every": 50,
        **DEFAULTS,
        **VARIANTS[variant],
    }
    return load_config([ROOT / "configs" / "demo.yaml"], [f"{k}={v}" for k, v in settings.items()])


# ---------------------------------------------------------------------------------------------
# One variant


def random_batches(lengths, batch_size, seed, fold, epoch):  # padded512: no length bucketing
    order = np.random.default_rng([seed, fold, epoch]).permutation(len(lengths))
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def epoch_order(t: FoldTrainer) -> list:
    return loop_module.epoch_batches(t.lengths, t.cfg.batch_size, t.cfg.seed, 0, 0)


def run_steps(t: FoldTrainer, first: int, count: int) -> None:
    order = epoch_order(t)
    for step in range(first, first + count):
        t.train_step(t.train_rows[order[step % len(order)]], epoch=1)
        if (step + 1) % t.cfg.log_every == 0:
            t.read_progress()
    t.read_progress()


@contextlib.contextmanager
def locked(path: Path | None):
    """An exclusive lock on `path` (None: no lock): one worker at a time in the widest warm-up."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def warm_every_width(t: FoldTrainer, runs: int, widest_lock: Path | None = None) -> int:
    """Each width that the epoch's full batches meet, `runs` times (graphs: a warm-up, then the
    capture), widest first; returns the number of widths."""
    first: dict[int, np.ndarray] = {}
    for batch in epoch_order(t):
        if len(batch) == t.cfg.batch_size:
            longest = int(t.lengths[batch].max())
            width = padded_width(longest, t.cfg.pad_multiple, t.config.model.max_len)
            first.setdefault(width, t.train_rows[batch])
    for i, width in enumerate(sorted(first, reverse=True)):
        with locked(widest_lock if i == 0 else None):
            for _ in range(runs):
                t.train_step(first[width], epoch=1)
            t.read_progress()  # done before the lock goes
    return len(first)


def timed_steps(t: FoldTrainer, count: int) -> dict:
    """`count` steps in epoch order: wall time, and CUDA events around each step."""
    cuda, order = t.device.type == "cuda", epoch_order(t)
    pair = 2 if cuda else 0
    events = [[torch.cuda.Event(enable_timing=True) for _ in range(pair)] for _ in range(count)]
    t.samples = t.tokens = 0
    synchronize(t.device)
    started, wall_started = time.perf_counter(), time.time()
    for step in range(count):
        if cuda:
            events[step][0].record()
        t.train_step(t.train_rows[order[step % len(order)]], epoch=1)
        if cuda:
            events[step][1].record()
        if (step + 1) % t.cfg.log_every == 0:
            t.read_progress()
    t.read_progress()
    synchronize(t.device)
    seconds = time.perf_counter() - started
    gpu_ms = sum(a.elapsed_time(b) for a, b in events) / count if cuda else None
    return {
        "samples": t.samples,
        "samples_per_s": t.samples / seconds,
        "tokens_per_s": t.tokens / seconds,
        "wall_ms": 1000 * seconds / count,
        "gpu_ms": gpu_ms,
        "started": wall_started,
        "ended": time.time(),
    }


def per_step_counts(t: FoldTrainer, first: int, steps: int = 5) -> dict:
    """Kernel launches (graph launches counted as such), the kernels' own GPU time and host
    syncs a step."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run_steps(t, first, steps)
    events = prof.events()
    names = [event.name for event in events]
    launches = sum(
        n in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC") for n in names
    )
    kernel_us = sum(
        e.self_device_time_total
        for e in events
        if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)
    )
    torch.cuda.set_sync_debug_mode("warn")
    try:  # process-wide: a failed variant must not leave it on for the next
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_steps(t, first + steps, steps)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    # run_steps reads the loss once at its end: that read is the logging cadence's, not the step's
    return {
        "launches_per_step": launches / steps,
        "graph_launches_per_step": names.count("cudaGraphLaunch") / steps,
        "kernel_ms": kernel_us / 1000 / steps,
        "syncs_per_step": max(syncs - 1, 0) / steps,
    }


def evaluation_seconds(t: FoldTrainer) -> float:
    """One fold's evaluations: 16 of a fifth of the rows, plus the test logits."""
    rows = np.arange(len(t.data.train))[: len(t.data.train) // 5]
    batching = Batching.of(t.config, t.pad_id, t.device)
    predict_logits(t.model, t.data.train, rows[:256], batching, t.cfg.ldam_s)  # warm-up
    synchronize(t.device)
    started = time.perf_counter()
    predict_logits(t.model, t.data.train, rows, batching, t.cfg.ldam_s)
    synchronize(t.device)
    one = time.perf_counter() - started
    t.model.train()
    return EVALUATIONS * one + one * len(t.data.tests[0]) / max(len(rows), 1)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def memory_mib(peak: bool = False) -> float:
    if not torch.cuda.is_available():
        return 0.0
    return (torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()) / 2**20


def measure(work: Path, variant: str, args, meta: dict, ready: Callable | None = None) -> dict:
    """One variant: warm every width, then `args.steps` timed steps (after `ready()`, a worker's
    barrier), its evaluations, and (CUDA) a profiled few steps."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    held = memory_mib()  # what earlier variants left: should be about 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    config = variant_config(work, variant, args.batch, meta["max_len"])
    data = load_data(work, config, meta)
    bucketed = loop_module.epoch_batches
    if variant == "padded512":
        loop_module.epoch_batches = random_batches
    try:
        # no start_or_resume: it would save the backbone (440 MB) into the fold folder
        t = FoldTrainer(data, 0, work / "runs" / variant, device, Console(quiet=True))
        t.model.train()
        runs = 2 if getattr(t.stepper, "graphs", None) is not None else 1
        widths = warm_every_width(t, runs, getattr(args, "widest_lock", None))
        if ready is not None:
            ready()
        result = {"widths": widths, "held_before_mib": held, **timed_steps(t, args.steps)}
        result["peak_mib"] = memory_mib(peak=True)
        result["eval_s"] = evaluation_seconds(t)
        if device.type == "cuda" and ready is None:  # not in the workers: the card is shared
            try:
                result |= per_step_counts(t, args.steps)
            except Exception as error:  # noqa: BLE001 (the timed figures above still count)
                result["counts_error"] = f"{type(error).__name__}: {error}"
        result["graphs"] = t._graph_counts()
        result["graphs_off"] = graphs_off()
        result["fold_min"] = (FOLD_STEPS * result["wall_ms"] / 1000 + result["eval_s"]) / 60
        return result
    finally:
        loop_module.epoch_batches = bucketed


def free_memory() -> None:
    """What a finished variant held (its trainer and step refer to each other: a cycle)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_variants(
    names: list[str], measure_one: Callable[[str], dict], path: Path, head: dict, cuda: bool
) -> dict:
    """Each variant in turn, `path` rewritten after each: a time limit loses only the variant
    it cut. A variant that fails is recorded and the next one runs."""
    results: dict[str, dict] = {}
    for name in names:
        if name in CUDA_ONLY and not cuda:
            results[name] = {"skipped": "CUDA graphs need a GPU"}
        else:
            try:
                results[name] = measure_one(name)
            except Exception as error:  # noqa: BLE001 (one variant failing keeps the others)
                results[name] = {"error": f"{type(error).__name__}: {error}"}
            free_memory()
        print(json.dumps({name: results[name]}), flush=True)
        write_json(path, {**head, "variants": results})
    return results


# ---------------------------------------------------------------------------------------------
# Several processes at once on one card


def wait_for_all(barrier: Path, rank: int, processes: int, timeout_s: float = 300) -> None:
    """A file barrier: this worker is ready; wait until every worker is ready or gone (the
    parent marks a worker that died), so that the timed windows start together."""
    (barrier / f"ready.{rank}").touch()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(list(barrier.glob("ready.*"))) + len(list(barrier.glob("gone.*"))) >= processes:
            return
        time.sleep(0.005)


def run_workers(commands: list[list[str]], barrier: Path) -> list[dict]:
    """Start the workers, mark each that fails as gone (its peers stop waiting for it), and
    return each one's result: its JSON, or its exit status and the end of its log."""
    workers = []
    for i, command in enumerate(commands):
        with open(barrier / f"worker{i}.log", "w") as log:  # the child keeps its own handle
            workers.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
            )
    while any(w.poll() is None for w in workers):
        for i, w in enumerate(workers):
            if w.poll() not in (None, 0):
                (barrier / f"gone.{i}").touch()
        time.sleep(0.05)
    results = []
    for i, w in enumerate(workers):
        path = barrier / f"result.{i}.json"
        if w.returncode == 0 and path.is_file():
            results.append(json.loads(path.read_text()))
        else:
            tail = (barrier / f"worker{i}.log").read_text().strip().splitlines()[-3:]
            results.append({"error": f"exit {w.returncode}: " + " | ".join(tail)})
    return results


def concurrent_rate(work: Path, processes: int, args) -> dict:
    """Joint samples/s of `processes` workers training one variant at once: each one's samples
    over the span from the first start to the last end of their timed windows."""
    barrier = Path(tempfile.mkdtemp(prefix=f"at-once-{processes}-", dir=work))
    options = {
        "--worker": work,
        "--barrier": barrier,
        "--processes": processes,
        "--only": args.concurrent_variant,
        "--steps": args.steps,
        "--batch": args.batch,
    }
    command = [sys.executable, __file__, *(str(x) for option in options.items() for x in option)]
    results = run_workers([command + ["--rank", str(i)] for i in range(processes)], barrier)
    done = [r for r in results if "error" not in r]
    out = {
        "processes": processes,
        "variant": args.concurrent_variant,
        "failed": [r["error"] for r in results if "error" in r],
    }
    if not done:
        return out
    span = max(r["ended"] for r in done) - min(r["started"] for r in done)
    rate = sum(r["samples"] for r in done) / span
    rounds = math.ceil(5 / len(done))  # each worker evaluates its own folds
    five = 5 * FOLD_STEPS * args.batch / rate + rounds * max(r["eval_s"] for r in done)
    overlap = min(r["ended"] for r in done) - max(r["started"] for r in done)
    return out | {
        "workers_done": len(done),
        "samples_per_s": rate,
        "span_s": span,
        "overlap_s": overlap,
        "five_folds_min": five / 60,
        "each": [round(r["samples_per_s"], 1) for r in done],
        "peak_mib": [round(r["peak_mib"]) for r in done],
        "graphs_off": sorted({r["graphs_off"] for r in done if r["graphs_off"]}),
    }


def worker(args) -> None:
    """One of the processes at once: its result goes to the barrier folder."""
    work, barrier = Path(args.worker), Path(args.barrier)
    meta = json.loads((work / "meta.json").read_text())
    args.widest_lock = work / "widest.lock"

    def ready() -> None:
        wait_for_all(barrier, args.rank, args.processes)

    result = measure(work, args.only[0], args, meta, ready)
    write_json(barrier / f"result.{args.rank}.json", result)


# ---------------------------------------------------------------------------------------------
# The first call at a new width per attention backend


def attention_first_calls(work: Path, meta: dict) -> dict:
    """ms of the first and the second forward+backward at a new width, per attention backend."""
    from comp.kinds.transformer.model import build_classifier
    from comp.neural.inference import device_context

    device = torch.device("cuda")
    config = variant_config(work, "syncfree32", 64, meta["max_len"])
    model = build_classifier(config, pretrained=True).to(device)
    out = {"priority": [str(b) for b in torch._C._get_sdp_priority_order()]}
    for backend in ("default", "efficient", "cudnn"):
        times = []
        for width in (96, 96, 160, 160):
            ids = torch.randint(5, meta["vocab"], (64, width), device=device)
            mask = torch.ones_like(ids, dtype=torch.bool)[:, None, None, :]
            synchronize(device)
            started = time.perf_counter()
            with device_context(device, "bf16", backend):
                model(input_ids=ids, attention_mask=mask).float().sum().backward()
            synchronize(device)
            times.append(round(1000 * (time.perf_counter() - started), 1))
        out[backend] = {
            "first_96": times[0],
            "second_96": times[1],
            "first_160": times[2],
            "second_160": times[3],
        }
    return out


# ---------------------------------------------------------------------------------------------
# The figures the GPU goal needs, named, from whatever files a session left


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def variant_rows(variants: dict) -> list[str]:
    rows = [
        "| variant | samples/s | wall ms a step | GPU-busy ms a step: events; kernels | "
        "bound by | minutes a fold (extrapolated) | launches a step | syncs a step | "
        "peak MiB | CUDA graphs |",
        "|" + " --- |" * 10,
    ]
    for name, r in variants.items():
        if "skipped" in r or "error" in r:
            rows.append(f"| {name} | {r.get('skipped') or r['error'][:150]} |" + " |" * 8)
            continue
        kernels, gpu = r.get("kernel_ms"), r.get("gpu_ms")
        bound = "" if kernels is None else ("GPU" if kernels >= 0.8 * r["wall_ms"] else "host")
        graphs = r.get("graphs")
        state = f"{graphs['captured']} captured, {graphs['replays']} replays" if graphs else ""
        if r.get("graphs_off"):
            state = f"off: {r['graphs_off']}"
        rows.append(
            f"| {name} | {r['samples_per_s']:.1f} | {r['wall_ms']:.1f} | "
            f"{fmt(gpu)}; {fmt(kernels)} | {bound} | {r['fold_min']:.2f} | "
            f"{fmt(r.get('launches_per_step'), 0)} | {fmt(r.get('syncs_per_step'))} | "
            f"{r['peak_mib']:,.0f} | {state} |"
        )
    return rows


def fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"  # None: measured on CUDA only


def cli_lines(cli: Path | None) -> list[str]:
    """The demo folds trained through the CLI: eager against graphed validation macro-F1."""
    if cli is None:
        return []
    lines = []
    fold0 = {
        n: read_json(cli / "runs" / n / "fold0" / "metrics.json")
        for n in ("gpu_eager", "gpu_graphs")
    }
    for name, m in fold0.items():
        said = "not trained"
        if m:
            said = (
                f"val macro-F1 {m['val_macro_f1']:.4f}, {m['samples_per_s']:.1f} samples/s, "
                f"{m['wall_s']:.1f} s, device {m['device']}, CUDA graphs {m.get('cuda_graphs')}"
            )
        lines.append(f"- `{name}` fold 0: {said}")
    if all(fold0.values()):
        gap = abs(fold0["gpu_eager"]["val_macro_f1"] - fold0["gpu_graphs"]["val_macro_f1"])
        lines.append(f"- eager against graphed validation macro-F1: |difference| {gap:.4f}")
    at_once = sorted((cli / "runs" / "gpu_at_once").glob("fold*/metrics.json"))
    trials = cli / "runs" / "tune" / "demo_tiny" / "trials.csv"
    lines.append(f"- folds at once (`comp train --gpus 0,0`): {len(at_once)} of 2 finished")
    rows = len(trials.read_text().splitlines()) - 1 if trials.is_file() else 0
    lines.append(f"- `comp tune`, 2 trials: {rows} in trials.csv")
    return lines


def figures(out: Path, cli: Path | None = None) -> str:
    """The figures the GPU goal needs, each named, from `out`'s train_gpu.json and
    concurrent.json and the CLI workspace `cli`."""
    run, together = read_json(out / "train_gpu.json"), read_json(out / "concurrent.json")
    meta = run.get("meta", {})
    lines = [
        f"# GPU figures: {meta.get('device', '?')}, torch {meta.get('torch', '?')}",
        "",
        f"Minutes a fold and 5 folds on one card are {EXTRAPOLATED} (and the test "
        "logits), not a fold trained to the end.",
        "",
    ]
    variants = run.get("variants", {})
    if variants:
        lines += [
            f"Batch {meta.get('batch')}, bf16, FGM, LDAM-DRW, {meta.get('steps')} timed "
            "steps a variant after every width was warmed (graphs: captured):",
            "",
        ]
        lines += variant_rows(variants) + [""]
        for name, r in variants.items():
            if "counts_error" in r:
                lines.append(
                    f"- {name}: launches, syncs and kernel time failed: {r['counts_error']}"
                )
        if meta.get("device") == "cpu":
            lines += ["GPU-busy time, launches and syncs are measured on CUDA only (-).", ""]
    best = [
        r
        for n, r in variants.items()
        if n in CUDA_ONLY and "fold_min" in r and not r.get("graphs_off")
    ]
    if best:
        fastest = min(best, key=lambda r: r["fold_min"])
        lines.append(f"- fold with graphs: {fastest['fold_min']:.2f} min (extrapolated; goal ≤ 4)")
        sequential = 5 * fastest["fold_min"]
        lines.append(f"- 5 folds one after another: {sequential:.1f} min (extrapolated)")
        padded = variants.get("padded512", {})
        if "samples_per_s" in padded:
            ratio = fastest["samples_per_s"] / padded["samples_per_s"]
            lines.append(f"- graphs against padded-512: {ratio:.1f}x samples/s (goal ≥ 5x)")
    for c in together.get("runs", []):
        if "samples_per_s" in c:
            lines.append(
                f"- 5 folds on one card, {c['processes']} processes at once "
                f"({c['variant']}): {c['samples_per_s']:.1f} samples/s together, "
                f"{c['five_folds_min']:.1f} min (extrapolated; goal ≤ 20); each "
                f"{c['each']} samples/s, peak MiB {c['peak_mib']}, windows overlapping "
                f"{c['overlap_s']:.1f} of {c['span_s']:.1f} s"
            )
        for reason in c.get("graphs_off", []):
            lines.append(f"- CUDA graphs went off in a worker of {c['processes']}: {reason}")
        for error in c.get("failed", []):
            lines.append(f"- a worker of {c['processes']} at once failed: {error[:300]}")
    if "attention" in run:
        lines.append(f"- first and second call at a new width per backend: {run['attention']}")
    lines += cli_lines(cli)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, a few steps")
    parser.add_argument("--steps", type=int, help="timed steps a variant (100; smoke 6)")
    parser.add_argument("--batch", type=int, help="rows a step (64; smoke 8)")
    parser.add_argument("--only", action="append", choices=list(VARIANTS))
    parser.add_argument(
        "--concurrent",
        type=int,
        nargs="*",
        default=[],
        help="also this many processes at once, e.g. 2 3",
    )
    parser.add_argument("--concurrent-variant", default="graphs32", choices=list(VARIANTS))
    parser.add_argument("--skip-variants", action="store_true", help="only --concurrent")
    parser.add_argument("--work", help="a workspace folder to make or reuse (default: a new one)")
    parser.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for results")
    parser.add_argument("--figures", metavar="DIR", help="only print DIR's figures (figures.md)")
    parser.add_argument("--cli", help="with --figures: the CLI workspace of gpu_session.sh")
    for hidden in ("--worker", "--barrier", "--processes", "--rank"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.figures:
        text = figures(Path(args.figures), Path(args.cli) if args.cli else None)
        Path(args.figures, "figures.md").write_text(text)
        print(text)
        return
    args.steps = args.steps or (6 if args.smoke else 100)
    args.batch = args.batch or (8 if args.smoke else 64)
    if args.worker:
        args.rank, args.processes = int(args.rank), int(args.processes)
        worker(args)
        return
    cuda = torch.cuda.is_available()
    if args.concurrent_variant in CUDA_ONLY and not cuda:
        args.concurrent_variant = "syncfree32"
    work = Path(args.work or tempfile.mkdtemp(prefix="comp-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    meta = build_workspace(work, args.smoke)
    out = Path(args.out or work)
    out.mkdir(parents=True, exist_ok=True)
    head = {
        "meta": {
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "torch": torch.__version__,
            "batch": args.batch,
            "steps": args.steps,
            **meta,
        }
    }
    print(json.dumps(head), flush=True)
    if not args.skip_variants:
        names = args.only or DEFAULT_VARIANTS
        run_variants(
            names, lambda name: measure(work, name, args, meta), out / "train_gpu.json", head, cuda
        )
    runs = []
    for processes in args.concurrent:
        runs.append(concurrent_rate(work, processes, args))
        print(json.dumps({"concurrent": runs[-1]}), flush=True)
        write_json(out / "concurrent.json", {**head, "runs": runs})
    if not args.skip_variants:
        run = read_json(out / "train_gpu.json")
        run["attention"] = (
            attention_first_calls(work, meta) if cuda else "skipped: measured on CUDA only"
        )
        write_json(out / "train_gpu.json", run)
        print(figures(out))


if __name__ == "__main__":
    main()
