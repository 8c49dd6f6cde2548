"""Per-step latency of the urgent loop in stream_priorities.py, with and without a high-priority stream.

    python -m ch11.priority_latency [--size full] [--repeats 5] [--out DIR]

Each step's latency is host wall time from issuing the step's kernels to having its result (the
stream synchronized), as a request loop sees it. Prints and writes DIR/priority_latency.json: per
variant the first step's latency (the one queued behind the background kernel), the median and the
90th percentile over all steps, and the whole call's time. Needs a CUDA GPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ch11 import stream_priorities as sp
from harness.device import provenance


def measure(size: str, urgent_high: bool, repeats: int, seed: int = 0) -> dict:
    x = sp.setup(size, torch.device("cuda"), seed)
    sp.run(x, urgent_high)  # warm-up: streams, cuBLAS handles, allocator
    torch.cuda.synchronize()
    first, every, calls = [], [], []
    for _ in range(repeats):
        lat: list[float] = []
        t0 = time.perf_counter()
        sp.run(x, urgent_high, lat)
        torch.cuda.synchronize()
        calls.append(time.perf_counter() - t0)
        first.append(lat[0])
        every += lat
    every.sort()
    us = lambda s: s * 1e6  # noqa: E731
    return {"variant": "high_priority" if urgent_high else "same_priority", "steps": x["steps"],
            "first_step_us": us(statistics.median(first)), "median_step_us": us(statistics.median(every)),
            "p90_step_us": us(every[int(0.9 * (len(every) - 1))]), "call_ms": statistics.median(calls) * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sp.SIZES, default="full")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not torch.cuda.is_available():
        print("priority_latency: needs a CUDA GPU", file=sys.stderr)
        return 2
    rows = [measure(args.size, high, args.repeats) for high in (False, True)]
    for r in rows:
        print(f"{r['variant']:>14}: first step {r['first_step_us']:.0f} us, median step {r['median_step_us']:.0f} us, "
              f"p90 {r['p90_step_us']:.0f} us, whole call {r['call_ms']:.2f} ms")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "priority_latency.json").write_text(json.dumps(
            {"provenance": provenance(torch.device("cuda"), size=args.size), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
