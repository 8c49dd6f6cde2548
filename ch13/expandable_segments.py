"""The caching allocator's `expandable_segments` vs its default, on training with variable-length batches.

    python -m ch13.expandable_segments --size tiny|small|full [--steps 24] [--json OUT]

Each step trains on a batch of a new sequence length (a random length in [seq/8, seq], the same sequence
for both settings; tokens per batch roughly constant, as a length-bucketing loader gives): every
activation has a new size. The default allocator carves blocks out of cudaMalloc'd segments and caches
them; a freed 300 MB block can only be reused by a request that fits in it, so a step with longer
sequences asks for new segments while the old ones sit partly free: reserved memory grows past what is
ever allocated at once. With `expandable_segments:True` a segment is a virtual address range that grows
by mapping more physical pages at its end, so blocks freed at the end of one step are extended in place
for the next.

Each setting runs in its own process (`PYTORCH_CUDA_ALLOC_CONF` is read when CUDA starts). Reported: peak
allocated and peak reserved, their ratio (1.0 = no fragmentation cost), cudaMalloc calls, allocation
retries (a retry frees the cache and tries again: a slow path), and the median step time. The
serving-shaped version of the same lesson is `ch11/allocator_fragmentation.py`. Needs a CUDA GPU.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from ch11.allocator_fragmentation import run_under_alloc_conf

SETTINGS = {"default": "", "expandable_segments": "expandable_segments:True"}


def lengths(size: str, steps: int, seed: int = 0) -> list[tuple[int, int]]:
    """(batch, seq) per step: random lengths, batch scaled to keep tokens per step about constant."""
    from ch13.train_common import BATCH

    batch, seq = BATCH[size]
    rng = random.Random(seed)
    out = []
    for _ in range(steps):
        t = rng.randint(max(1, seq // 8), seq)
        out.append((max(1, batch * seq // t), t))
    return out


def child(size: str, steps: int) -> dict:
    import torch

    from ch13.train_common import loss_fn, make_model, make_optimizer

    device = torch.device("cuda")
    model = make_model(size, device)
    opt = make_optimizer(model, "fused")
    gen = torch.Generator(device=device).manual_seed(0)
    times = []
    for b, t in lengths(size, steps):
        seq = torch.randint(0, model.cfg.vocab, (b, t + 1), device=device, generator=gen)
        t0 = time.perf_counter()
        loss_fn(model, seq[:, :-1], seq[:, 1:]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    s = torch.cuda.memory_stats()
    gib = 1 << 30
    alloc, reserved = s["allocated_bytes.all.peak"], s["reserved_bytes.all.peak"]
    return {"peak_allocated_gib": alloc / gib, "peak_reserved_gib": reserved / gib,
            "reserved_over_allocated": reserved / alloc, "cuda_mallocs": int(s.get("num_device_alloc", 0)),
            "alloc_retries": int(s.get("num_alloc_retries", 0)), "median_step_ms": statistics.median(times),
            "step_ms": times}


def run_setting(name: str, size: str, steps: int, timeout: float) -> dict:
    return run_under_alloc_conf("ch13.expandable_segments", name, SETTINGS[name],
                                ["--size", size, "--steps", str(steps)], timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "small", "full"), default="full")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    import torch

    if not torch.cuda.is_available():
        print("expandable_segments: needs a CUDA GPU", file=sys.stderr)
        return 2
    if args.child:
        print(json.dumps(child(args.size, args.steps)))
        return 0
    rows = [run_setting(name, args.size, args.steps, args.timeout) for name in SETTINGS]
    for r in rows:
        if "error" in r:
            print(f"{r['setting']:>20}: failed: {r['error']}")
            continue
        print(f"{r['setting']:>20}: peak reserved {r['peak_reserved_gib']:.2f} GiB for {r['peak_allocated_gib']:.2f} GiB "
              f"allocated ({r['reserved_over_allocated']:.2f}x), {r['cuda_mallocs']} cudaMallocs, "
              f"{r['alloc_retries']} retries, median step {r['median_step_ms']:.1f} ms")
    if args.json:
        from harness.device import provenance

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"provenance": provenance(torch.device("cuda"), size=args.size,
                                                                  steps=args.steps), "rows": rows}, indent=1))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
