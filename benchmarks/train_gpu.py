"""Training throughput of the paper's recipe on an ARBERTv2-shaped model, bucketed vs padded.

Random init from a BertConfig with ARBERTv2's sizes (12 layers, hidden 768, vocab 100,000, 512
positions), the demo competition's length mix, batch 64, bf16, FGM on. Runs comp's own training
loop (`comp train`'s fold frame) once per variant, in one process: length-bucketed batches with
lengths rounded up to a multiple of 32 (the recipe's `train.pad_multiple`), bucketed with exact
lengths, random batches padded to max_len (the notebook habit) and, with --compile, bucketed
under `train.compile`. Each variant gets 3 untimed warm-up steps. Prints samples/s, tokens/s,
peak memory and the time one fold of 8,000 steps would take (steps at the measured rate plus
16 evaluations and the test logits).

    python benchmarks/train_gpu.py [--compile] [--only bucketed --only padded ...]
    python benchmarks/train_gpu.py --smoke         # a few steps of a tiny shape, on any machine
    bash benchmarks/gpu_session.sh                 # what a lent GPU machine runs, in one call
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

import comp.kinds.transformer.batches as batches_module
import comp.kinds.transformer.loop as loop_module
from comp.config import load_config
from comp.kinds.transformer.backbone import quiet_transformers, train_wordpiece, training_texts
from comp.kinds.transformer.encoding import pad_batch
from comp.kinds.transformer.inference import predict_logits
from comp.kinds.transformer.run import encode_run
from comp.runs.frame import fold_fingerprint, load_run_inputs, train_folds
from comp.runs.layout import METRICS, fold_dir
from comp.workspace import prepare_demo, workspace_overrides

ROOT = Path(__file__).resolve().parents[1]


def build_backbone(texts: list[str], out: Path, smoke: bool) -> None:
    from transformers import BertConfig, BertModel

    quiet_transformers()
    # The tokenizer only sets the length mix; ids are spread over the full 100k vocab.
    tokenizer = train_wordpiece(texts, 2000 if smoke else 60000, 512)
    sizes = (
        dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
        if smoke
        else dict(
            hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
        )
    )
    config = BertConfig(vocab_size=100_000, max_position_embeddings=512, **sizes)
    BertModel(config, add_pooling_layer=False).save_pretrained(out)
    tokenizer.save_pretrained(out)


def padded_batches(lengths, batch_size, seed, fold, epoch):
    rng = np.random.default_rng([seed, fold, epoch])
    order = rng.permutation(len(lengths))
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def run(config, device, padded: bool, max_len: int) -> dict:
    original_batches, original_pad = loop_module.epoch_batches, batches_module.pad_batch
    if padded:
        loop_module.epoch_batches = padded_batches

        def pad_to_max(seqs, pad_id, *_):  # real tokens keep mask 1: tokens/s counts them only
            ids, mask = pad_batch(seqs, pad_id)
            extra = max_len - ids.shape[1]
            return F.pad(ids, (0, extra), value=pad_id), F.pad(mask, (0, extra), value=0)

        batches_module.pad_batch = pad_to_max
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        train_folds(config, [0], str(device), True, Console(quiet=True))
    finally:
        loop_module.epoch_batches, batches_module.pad_batch = original_batches, original_pad
    return json.loads((fold_dir(config, 0) / METRICS).read_text())


def time_evaluation(config, data, device, rows: int) -> float:
    """Seconds to predict `rows` validation rows with the bucketed run's model (bf16 on CUDA)."""
    from comp.kinds.transformer.model import build_classifier

    model = build_classifier(config, pretrained=True).to(device)
    picked = np.arange(min(rows, len(data.train)))
    predict = predict_logits
    args = (model, data.train, picked, config.train.eval_batch_size)
    predict(*args, data.tokenizer.pad_token_id, device, 1.0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    predict(*args, data.tokenizer.pad_token_id, device, 1.0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny shape, a few steps")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--scale", type=float, default=None)
    parser.add_argument(
        "--compile", action="store_true", help="also time train.compile=true (bucketed)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["bucketed", "exact", "padded", "compiled"],
        help="run only these variants, in this order",
    )
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps = args.steps or (6 if args.smoke else 400)  # new lengths keep appearing early on
    scale = args.scale or (0.03 if args.smoke else 1.0)
    batch = 8 if args.smoke else 64
    max_len = 128 if args.smoke else 512
    work = Path(tempfile.mkdtemp(prefix="comp-bench-"))
    overrides = [
        *workspace_overrides(work, backbone="backbone"),
        f"demo.scale={scale}",
        f"model.max_len={max_len}",
        f"train.steps={steps}",
        f"train.batch_size={batch}",
        f"train.eval_every={steps}",
        f"train.checkpoint_every={10 * steps}",
        "train.eval_batch_size=256",
        "train.fgm=true",
        "train.lr=5e-5",
    ]
    config = load_config([ROOT / "configs" / "demo.yaml"], overrides)
    train = prepare_demo(config)
    build_backbone(training_texts(train), work / "backbone", args.smoke)
    data = encode_run(load_run_inputs(config, fold_fingerprint(config)))
    # The paper's fold: 8,000 steps, an evaluation every 500 on the validation fold (a fifth of
    # the rows), then test logits for 18,634 rows.
    val_rows = len(train) // 5
    eval_s = time_evaluation(config, data, device, val_rows)
    fold_eval_s = eval_s * (8000 // 500 + 18_634 / val_rows)
    print(
        f"one evaluation of {val_rows:,} rows: {eval_s:.2f} s; a fold's evaluations: "
        f"{fold_eval_s:.0f} s",
        flush=True,
    )
    # key: (row label, padded to max_len, train.pad_multiple, train.compile)
    variants = {
        "bucketed": ("bucketed, lengths rounded up to 32", False, 32, False),
        "exact": ("bucketed, exact lengths", False, 1, False),
        "padded": (f"padded to {max_len}", True, 1, False),
        "compiled": ("bucketed (32), compiled", False, 32, True),
    }
    keys = args.only or ["bucketed", "exact", "padded"] + (["compiled"] if args.compile else [])
    results = {}
    for key in keys:
        name, padded, multiple, compiled = variants[key]
        experiment = key
        config.train.compile, config.train.pad_multiple = compiled, multiple
        try:
            # 3 untimed steps first: CUDA start-up, kernel choice and torch.compile's compiling
            config.train.experiment = f"{experiment}_warm-up"
            config.train.steps = config.train.eval_every = 3
            started = time.perf_counter()
            run(config, device, padded, max_len)
            warmup_s = time.perf_counter() - started
            config.train.experiment = experiment
            config.train.steps = config.train.eval_every = steps
            started = time.perf_counter()
            metrics = run(config, device, padded, max_len)
        except Exception as error:  # a compile failure must not lose the other figures
            print(f"{name}: failed: {type(error).__name__}: {error}", flush=True)
            continue
        kept = ("samples_per_s", "tokens_per_s", "peak_memory_mb")
        results[name] = {k: metrics[k] for k in kept}
        results[name] |= {"warmup_s": warmup_s, "total_s": time.perf_counter() - started}
        print(f"{name}: {json.dumps(results[name])}", flush=True)

    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor()
    table = Table(
        title=f"train_gpu.py on {gpu} ({device}), batch {batch}, {steps} steps, "
        f"{len(train):,} train rows"
    )
    columns = ("batches", "samples/s", "tokens/s", "peak MiB", "warm-up s", "run s")
    columns += ("8,000 steps (min)",)
    for column in columns:
        table.add_column(column, justify="right")
    for name, m in results.items():
        fold_minutes = (8000 * batch / m["samples_per_s"] + fold_eval_s) / 60
        table.add_row(
            name,
            f"{m['samples_per_s']:.1f}",
            f"{m['tokens_per_s']:,.0f}",
            f"{m['peak_memory_mb']:,.0f}",
            f"{m['warmup_s']:.0f}",
            f"{m['total_s']:.0f}",
            f"{fold_minutes:.1f}",
        )
    Console().print(table)
    print("8,000 steps = the training steps at the measured rate + the fold's evaluations")
    speeds = {name: m["samples_per_s"] for name, m in results.items()}
    padded_name = variants["padded"][0]
    for name, value in speeds.items():
        if name != padded_name and padded_name in speeds:
            print(f"speed-up of {name} over padding: {value / speeds[padded_name]:.2f}x")
    print(
        json.dumps(
            {
                "device": gpu,
                "torch": torch.__version__,
                "python": sys.version.split()[0],
                "eval_s": eval_s,
                **results,
            }
        )
    )


if __name__ == "__main__":
    main()
