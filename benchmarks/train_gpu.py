"""Training speed of the paper's recipe on one GPU, variant by variant, in one run (issue 12).

An ARBERTv2-shaped model (12 layers, hidden 768, vocab 100,000, 512 positions; random init),
batch 64, bf16, FGM and LDAM-DRW on, over a synthetic training set with the real task's length
mix: the full-size demo's pair lengths scaled to a mean of about 75 tokens (the real task's;
the demo's text averages about 51), capped at 512. Token ids are random: speed does not depend
on them. Each variant runs `comp`'s own `FoldTrainer`: `--warmup` untimed steps, then `--steps`
timed ones; then a profiled few steps count kernel launches and host syncs per step.

Variants (key: what it runs):
    eager_exact   the step before issue 12: eager, exact lengths, torch's default attention
    padded512     the notebook habit: eager, random batches padded to 512
    syncfree32    the sync-free step, eager launches, lengths rounded up to 32
    graphs32      the sync-free step as CUDA graphs, lengths rounded up to 32
    graphs16      the same, rounded up to 16

For each: samples/s, tokens/s, peak memory, minutes for a fold of 8,000 steps (the steps at the
measured rate plus 16 evaluations of a fifth of the rows and the test logits, timed with the
variant's own padding and attention), and launches and syncs a step. Then the aggregate rate of
2 and 3 processes training at once on the card (`--concurrent`), and the first call at a new
width against the second for each attention backend.

    python benchmarks/train_gpu.py                         # everything (bash gpu_session.sh)
    python benchmarks/train_gpu.py --only graphs32 --steps 400
    python benchmarks/train_gpu.py --smoke                 # tiny shapes, a few steps, any machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import comp.kinds.transformer.loop as loop_module
from comp.data import TestData, TrainData
from comp.demo.generator import generate_demo
from comp.kinds import RunInputs, load_config
from comp.kinds.transformer.loop import EncodedRun, FoldTrainer
from comp.neural.backbone import quiet_transformers, train_wordpiece
from comp.neural.inference import Batching, predict_logits
from comp.neural.token_cache import EncodedTexts
from comp.text import split_qa

ROOT = Path(__file__).resolve().parents[1]
QUIET = Console(quiet=True)
FOLD_STEPS, EVALUATIONS, TEST_ROWS = 8000, 16, 18_634
VARIANTS = {
    "eager_exact": {"train.step": "eager", "train.pad_multiple": 1, "train.attention": "default"},
    "padded512": {"train.step": "eager", "train.pad_multiple": 512, "train.attention": "default"},
    "syncfree32": {"train.step": "sync_free", "train.cuda_graphs": "false"},
    "graphs32": {"train.step": "sync_free", "train.cuda_graphs": "true"},
    "graphs16": {"train.step": "sync_free", "train.cuda_graphs": "true", "train.pad_multiple": 16},
}
DEFAULTS = {"train.pad_multiple": 32, "train.attention": "efficient"}


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
    """The backbone folder and the synthetic data, saved under `work` (workers reload them)."""
    from transformers import BertConfig, BertModel

    quiet_transformers()
    max_len = 128 if smoke else 512
    sizes = (
        dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
        if smoke
        else dict(
            hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
        )
    )
    config = BertConfig(vocab_size=100_000, max_position_embeddings=512, **sizes)
    BertModel(config, add_pooling_layer=False).save_pretrained(work / "backbone")
    demo = generate_demo(scale=0.02, seed=1).train["text"].to_list()
    texts = [" ".join(split_qa(t, "السؤال", "الجواب")) for t in demo]
    train_wordpiece(texts, 2000, max_len).save_pretrained(work / "backbone")
    lengths = pair_lengths(75.0, max_len, smoke)
    np.save(work / "lengths.npy", lengths)
    return {"max_len": max_len, "rows": len(lengths), "mean_tokens": float(lengths.mean())}


def load_data(work: Path, config) -> EncodedRun:
    from comp.neural.backbone import load_tokenizer

    lengths = np.load(work / "lengths.npy")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, config.data.num_labels, len(lengths))
    folds = rng.integers(0, 5, len(lengths))
    train = TrainData(work, "synthetic", [], [], labels, [str(i) for i in range(82)])
    test_lengths = rng.choice(lengths, size=min(TEST_ROWS, len(lengths)))
    test = TestData("test", work, [str(i) for i in range(len(test_lengths))], [], [])
    inputs = RunInputs(config, train, [test], folds, "synthetic", "synthetic", work / "cache")
    encoded_test = synthetic_texts(test_lengths, 100_000, 2)
    tokenizer = load_tokenizer(str(work / "backbone"))
    return EncodedRun(inputs, tokenizer, synthetic_texts(lengths, 100_000, 1), [encoded_test])


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


def random_batches(lengths, batch_size, seed, fold, epoch):  # padded512: no length bucketing
    order = np.random.default_rng([seed, fold, epoch]).permutation(len(lengths))
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def run_steps(t: FoldTrainer, first: int, count: int) -> None:
    order = loop_module.epoch_batches(t.lengths, t.cfg.batch_size, t.cfg.seed, 0, 0)
    for step in range(first, first + count):
        t.train_step(t.train_rows[order[step % len(order)]], epoch=1)
        if (step + 1) % t.cfg.log_every == 0:
            t.read_progress()
    t.read_progress()


def per_step_counts(t: FoldTrainer, first: int, steps: int = 5) -> dict:
    """Kernel launches (graph launches counted as such) and host syncs a step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_steps(t, first, steps)
    names = [event.name for event in prof.events()]
    launches = sum(
        n in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC") for n in names
    )
    graphs = sum(n == "cudaGraphLaunch" for n in names)
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_steps(t, first + steps, steps)
    torch.cuda.set_sync_debug_mode(0)
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    # run_steps reads the loss once at its end: that read is the logging cadence's, not the step's
    return {"launches_per_step": launches / steps, "graph_launches_per_step": graphs / steps,
            "syncs_per_step": max(syncs - 1, 0) / steps}  # fmt: skip


def evaluation_seconds(t: FoldTrainer) -> float:
    """One fold's evaluations: 16 of a fifth of the rows, plus the test logits."""
    cfg, device = t.cfg, t.device
    rows = np.arange(len(t.data.train))[: len(t.data.train) // 5]
    batching = Batching.of(t.config, t.pad_id, device)
    predict_logits(t.model, t.data.train, rows[:256], batching, cfg.ldam_s)  # warm-up
    synchronize(device)
    started = time.perf_counter()
    predict_logits(t.model, t.data.train, rows, batching, cfg.ldam_s)
    synchronize(device)
    one = time.perf_counter() - started
    test = t.data.tests[0]
    return EVALUATIONS * one + one * len(test) / max(len(rows), 1)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(work: Path, variant: str, args, meta: dict) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = variant_config(work, variant, args.batch, meta["max_len"])
    data = load_data(work, config)
    bucketed = loop_module.epoch_batches
    if variant == "padded512":
        loop_module.epoch_batches = random_batches
    try:
        t = FoldTrainer(data, 0, work / "runs" / variant, device, QUIET)
        (work / "runs" / variant).mkdir(parents=True, exist_ok=True)
        t.start_or_resume()
        t.model.train()
        run_steps(t, 0, args.warmup)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t.samples = t.tokens = 0
        synchronize(device)
        started = time.perf_counter()
        run_steps(t, args.warmup, args.steps)
        synchronize(device)
        seconds = time.perf_counter() - started
        result = {
            "samples_per_s": t.samples / seconds,
            "tokens_per_s": t.tokens / seconds,
            "step_ms": 1000 * seconds / args.steps,
            "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0,
            "eval_s": evaluation_seconds(t),
            "graphs": t._graph_counts(),
        }
        if device.type == "cuda":
            result |= per_step_counts(t, args.warmup + args.steps)
        result["fold_min"] = (FOLD_STEPS * result["step_ms"] / 1000 + result["eval_s"]) / 60
        return result
    finally:
        loop_module.epoch_batches = bucketed


def concurrent_rate(work: Path, processes: int, args) -> dict:
    """Aggregate samples/s of `processes` workers training the best variant at once."""
    command = [sys.executable, __file__, "--worker", str(work), "--only", args.concurrent_variant,
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch",
               str(args.batch)]  # fmt: skip
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
               for _ in range(processes)]  # fmt: skip
    results = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
    rate = sum(r["samples_per_s"] for r in results)
    five_folds = 5 * FOLD_STEPS * args.batch / rate / 60 + max(r["eval_s"] for r in results) / 60
    return {"processes": processes, "samples_per_s": rate, "five_folds_min": five_folds}


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
            ids = torch.randint(5, 100_000, (64, width), device=device)
            mask = torch.ones_like(ids, dtype=torch.bool)[:, None, None, :]
            synchronize(device)
            started = time.perf_counter()
            with device_context(device, "bf16", backend):
                model(input_ids=ids, attention_mask=mask).float().sum().backward()
            synchronize(device)
            times.append(round(1000 * (time.perf_counter() - started), 1))
        out[backend] = {"first_96": times[0], "second_96": times[1], "first_160": times[2],
                        "second_160": times[3]}  # fmt: skip
    return out


def print_table(results: dict, concurrent: list, batch: int) -> None:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    table = Table(title=f"train_gpu.py on {gpu}: batch {batch}, bf16, FGM, LDAM-DRW")
    for column in ("variant", "samples/s", "tokens/s", "step ms", "peak MiB", "fold min",
                   "launches/step", "syncs/step"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, r in results.items():
        if "error" in r:
            table.add_row(name, r["error"][:60], *[""] * 6)
            continue
        table.add_row(name, f"{r['samples_per_s']:.1f}", f"{r['tokens_per_s']:,.0f}",
                      f"{r['step_ms']:.1f}", f"{r['peak_mib']:,.0f}", f"{r['fold_min']:.2f}",
                      f"{r.get('launches_per_step', 0):.0f}",
                      f"{r.get('syncs_per_step', 0):.1f}")  # fmt: skip
    Console(width=160).print(table)
    for c in concurrent:
        print(f"{c['processes']} processes at once: {c['samples_per_s']:.1f} samples/s together, "
              f"5 folds in {c['five_folds_min']:.1f} min")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, a few steps")
    parser.add_argument("--steps", type=int, default=None, help="timed steps a variant (400)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (20)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--only", action="append", choices=list(VARIANTS))
    parser.add_argument(
        "--concurrent",
        type=int,
        nargs="*",
        default=[],
        help="also the aggregate rate of this many processes at once, e.g. 2 3",
    )
    parser.add_argument("--concurrent-variant", default="graphs32", choices=list(VARIANTS))
    parser.add_argument(
        "--skip-variants",
        action="store_true",
        help="only the concurrent rates (and the attention check)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a workspace: one variant, JSON out
    parser.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for results")
    args = parser.parse_args()
    args.steps = args.steps or (6 if args.smoke else 400)
    args.warmup = args.warmup or (2 if args.smoke else 20)
    args.batch = args.batch or (8 if args.smoke else 64)
    if args.worker:
        work = Path(args.worker)
        meta = json.loads((work / "meta.json").read_text())
        print(json.dumps(measure(work, args.only[0], args, meta)))
        return
    work = Path(tempfile.mkdtemp(prefix="comp-gpu-bench-"))
    meta = build_workspace(work, args.smoke)
    (work / "meta.json").write_text(json.dumps(meta))
    print(json.dumps({"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else
                      "cpu", "torch": torch.__version__, **meta}), flush=True)  # fmt: skip
    results: dict[str, dict] = {}
    for variant in [] if args.skip_variants else args.only or list(VARIANTS):
        if variant.startswith("graphs") and not torch.cuda.is_available():
            continue
        try:
            results[variant] = measure(work, variant, args, meta)
        except Exception as error:  # noqa: BLE001 (one variant failing keeps the others)
            results[variant] = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps({variant: results[variant]}), flush=True)
    concurrent = []
    if torch.cuda.is_available():
        for processes in args.concurrent:
            concurrent.append(concurrent_rate(work, processes, args))
            print(json.dumps({"concurrent": concurrent[-1]}), flush=True)
        if not args.skip_variants:
            print(json.dumps({"attention": attention_first_calls(work, meta)}), flush=True)
    print_table(results, concurrent, args.batch)
    if args.out:
        name = "concurrent.json" if args.skip_variants else "train_gpu.json"
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, name).write_text(
            json.dumps({"meta": meta, "variants": results, "concurrent": concurrent}, indent=1)
        )


if __name__ == "__main__":
    main()
