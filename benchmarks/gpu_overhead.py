"""Where a training step's time goes on this GPU machine: per-call costs of launches, syncs and
host-to-device copies, then eager BERT steps (tiny and base shapes, batch 64 x 70 tokens, bf16)
with and without a host sync per step, and a profiler summary of the base step.

    python benchmarks/gpu_overhead.py
"""

from __future__ import annotations

import os
import platform
import time

import torch
from transformers import BertConfig, BertModel

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync() -> None:
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def ms_per_call(fn, n: int) -> float:
    fn()
    sync()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - started) / n * 1e3


def time_steps(name: str, sizes: dict, profile_steps: bool) -> None:
    """ms per eager training step of a random BERT, batch 64 x 70 tokens, mask all ones."""
    model = BertModel(BertConfig(vocab_size=100_000, **sizes), add_pooling_layer=False)
    model = model.to(DEV).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=DEV.type == "cuda")
    ids = torch.randint(5, 100_000, (64, 70), device=DEV)
    mask = torch.ones_like(ids)

    def step(host_sync: bool) -> None:
        with torch.autocast(DEV.type, dtype=torch.bfloat16, enabled=DEV.type == "cuda"):
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        loss = out.float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if host_sync:
            loss.item()

    print(f"{name} step, sync=False: {ms_per_call(lambda: step(False), 20):.2f} ms")
    print(f"{name} step, sync=True: {ms_per_call(lambda: step(True), 20):.2f} ms")
    if profile_steps:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                step(True)
            sync()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=8))


def main() -> None:
    print("kernel", platform.release(), "cpus", os.cpu_count(), "torch", torch.__version__)
    x = torch.zeros(1, device=DEV)
    host = torch.zeros(64, 70, dtype=torch.long)
    print(f"add_ launch      {ms_per_call(lambda: x.add_(1), 2000):.4f} ms")
    print(f"synchronize      {ms_per_call(sync, 1000):.4f} ms")
    print(f"item()           {ms_per_call(lambda: x.item(), 1000):.4f} ms")
    print(f"to(dev) pageable {ms_per_call(lambda: host.to(DEV), 300):.4f} ms")
    pinned = lambda: host.pin_memory().to(DEV, non_blocking=True)  # noqa: E731
    print(f"pin + to(dev)    {ms_per_call(pinned, 300):.4f} ms")
    shapes = {
        "tiny": dict(
            hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512
        ),
        "base": dict(
            hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
        ),
    }
    for name, sizes in shapes.items():
        time_steps(name, sizes, profile_steps=name == "base" and DEV.type == "cuda")


if __name__ == "__main__":
    main()
