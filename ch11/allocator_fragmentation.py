"""PyTorch's caching allocator vs expandable segments: fragmentation, read from torch.cuda.memory_stats.

    python -m ch11.allocator_fragmentation [--steps 40] [--out DIR]

The workload is what serving with variable batch and sequence lengths does: each step makes a large
short-lived activation of a new size (64-512 MiB) and a small long-lived tensor (2-8 MiB, e.g. a cache
entry) that is kept. The default allocator caches freed blocks and splits them: the small tensor lands
inside the big free block, pins its segment, and the next, larger activation needs a new cudaMalloc.
Reserved memory grows with the sum of the activations while little is allocated. With
`expandable_segments:True` a segment is a virtual range that grows by mapping pages, so the next
activation extends the existing segment instead of leaving a stranded one behind.

Each setting runs in its own process (PYTORCH_CUDA_ALLOC_CONF is read when CUDA starts). Reported per
setting: peak allocated and reserved bytes, reserved/allocated at the peak, the free bytes stranded in
split blocks (`inactive_split_bytes`), segments, cudaMalloc calls and wall time. Needs a CUDA GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

MIB = 1 << 20
SETTINGS = {"caching": "", "expandable_segments": "expandable_segments:True"}


def workload_sizes(steps: int, seed: int = 0) -> list[tuple[int, int]]:
    """(activation bytes, kept bytes) per step: the same sequence for every setting."""
    rng = random.Random(seed)
    return [(rng.randint(64, 512) * MIB, rng.randint(2, 8) * MIB) for _ in range(steps)]


def fragmentation(stats: dict) -> dict:
    """The figures that matter from a torch.cuda.memory_stats() dict."""
    g = lambda key: int(stats.get(key, 0))  # noqa: E731
    peak_alloc, peak_reserved = g("allocated_bytes.all.peak"), g("reserved_bytes.all.peak")
    alloc, reserved = g("allocated_bytes.all.current"), g("reserved_bytes.all.current")
    return {
        "peak_allocated_mib": peak_alloc / MIB,
        "peak_reserved_mib": peak_reserved / MIB,
        "reserved_over_allocated_at_peak": peak_reserved / peak_alloc if peak_alloc else None,
        "allocated_mib": alloc / MIB,
        "reserved_mib": reserved / MIB,
        "fragmentation": 1 - alloc / reserved if reserved else 0.0,  # share of reserved memory not in use
        "inactive_split_mib": g("inactive_split_bytes.all.current") / MIB,
        "segments": g("segment.all.current"),
        "cuda_mallocs": g("num_device_alloc"),
        "alloc_retries": g("num_alloc_retries"),
    }


def child(steps: int) -> dict:
    import torch

    kept, t0 = [], time.perf_counter()
    for activation, keep in workload_sizes(steps):
        act = torch.empty(activation, dtype=torch.uint8, device="cuda")
        act.fill_(1)
        kept.append(torch.empty(keep, dtype=torch.uint8, device="cuda"))
        del act
    torch.cuda.synchronize()
    return {"wall_ms": (time.perf_counter() - t0) * 1e3, **fragmentation(torch.cuda.memory_stats())}


def run_under_alloc_conf(module: str, setting: str, conf: str, args: list[str], timeout: float) -> dict:
    """`python -m module --child ARGS` with PYTORCH_CUDA_ALLOC_CONF=conf (unset when empty): the allocator reads it
    once, at its first allocation, so each setting needs a process of its own. The child's last line is its JSON."""
    env = {**os.environ, "PYTORCH_CUDA_ALLOC_CONF": conf}
    if not conf:
        env.pop("PYTORCH_CUDA_ALLOC_CONF")
    try:
        proc = subprocess.run([sys.executable, "-m", module, "--child", *args], env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"setting": setting, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"setting": setting, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return {"setting": setting, "alloc_conf": conf, **json.loads(proc.stdout.strip().splitlines()[-1])}


def run_setting(name: str, steps: int) -> dict:
    return run_under_alloc_conf("ch11.allocator_fragmentation", name, SETTINGS[name], ["--steps", str(steps)], 300)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    import torch

    if not torch.cuda.is_available():
        print("allocator_fragmentation: needs a CUDA GPU", file=sys.stderr)
        return 2
    if args.child:
        print(json.dumps(child(args.steps)))
        return 0
    rows = [run_setting(name, args.steps) for name in SETTINGS]
    for r in rows:
        if "error" in r:
            print(f"{r['setting']:>20}: failed: {r['error']}")
            continue
        print(f"{r['setting']:>20}: peak reserved {r['peak_reserved_mib']:.0f} MiB for {r['peak_allocated_mib']:.0f} MiB "
              f"allocated ({r['reserved_over_allocated_at_peak']:.2f}x); at the end {100 * r['fragmentation']:.0f}% of "
              f"reserved unused, {r['segments']} segments, {r['cuda_mallocs']} cudaMallocs, {r['wall_ms']:.1f} ms")
    if args.out:
        from harness.device import provenance

        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "allocator_fragmentation.json").write_text(json.dumps(
            {"provenance": provenance(torch.device("cuda"), steps=args.steps), "rows": rows}, indent=1))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
