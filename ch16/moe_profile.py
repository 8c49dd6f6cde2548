"""The profiling workflow on the MoE layer: which kernel dominates, and is the GPU even busy?

    python -m ch16.moe_profile --size full --json moe_profile.json --table moe_profile.txt

For each variant of `ch16/moe_layer.py` (expert loop, padded bmm, torch._grouped_mm where it runs) a few calls
run under torch.profiler. From its table: the operators and kernels that take the most time (self time on the
GPU, or on the CPU when there is none), how many host syncs the calls made (`aten::nonzero`, `aten::item`:
each one stops the host until the GPU catches up), the number of kernel launches, and the GPU's busy fraction
(kernel time / wall time). A busy fraction far below 1 says the host, not a kernel, is the bottleneck: no
kernel tuning helps until the launches and syncs are gone. ch16/README.md walks through the result.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from ch16 import moe_layer

SYNC_OPS = ("aten::nonzero", "aten::item")  # (item calls _local_scalar_dense: counted once)


def _self_time(e, device: bool) -> float:
    return e.self_device_time_total if device else e.self_cpu_time_total


def _is_kernel(e) -> bool:
    """A GPU activity (kernel, memcpy, memset), not a CPU operator (whose self device time repeats its kernels')."""
    return e.device_type == DeviceType.CUDA


def profile_variant(name: str, fn, inputs, device: torch.device, calls: int = 5, top: int = 8) -> tuple[dict, str]:
    on_gpu = device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    for _ in range(2):
        fn(inputs)
    sync()
    t0 = time.perf_counter()  # wall time without the profiler (which adds its own cost per event)
    for _ in range(calls):
        fn(inputs)
    sync()
    wall_us = (time.perf_counter() - t0) * 1e6
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=acts) as prof:
        for _ in range(calls):
            fn(inputs)
        sync()
    ka = prof.key_averages()
    kernels = [e for e in ka if on_gpu and _is_kernel(e)]
    ranked = sorted(kernels if on_gpu else [e for e in ka if _self_time(e, False) > 0], key=lambda e: -_self_time(e, on_gpu))
    total = sum(_self_time(e, on_gpu) for e in (kernels if on_gpu else ka))
    row = {"variant": name, "calls": calls, "wall_us_per_call": wall_us / calls,
           "host_syncs_per_call": sum(e.count for e in ka if e.key in SYNC_OPS) / calls,
           "top": [{"name": e.key[:90], "count_per_call": e.count / calls, "self_us_per_call": _self_time(e, on_gpu) / calls,
                    "share": _self_time(e, on_gpu) / total if total else None} for e in ranked[:top]]}
    if on_gpu:
        kernel_us = sum(_self_time(e, True) for e in kernels)
        row |= {"kernel_launches_per_call": sum(e.count for e in kernels) / calls,
                "gpu_busy_fraction": kernel_us / wall_us}
    sort_by = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    return row, f"# {name}: {calls} calls\n" + ka.table(sort_by=sort_by, row_limit=top + 4)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="full", choices=list(moe_layer.SHAPES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--calls", type=int, default=5, help="calls per variant, timed and profiled")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--table", type=Path, help="torch.profiler's tables as text")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.calls < 1:
        print("moe_profile: --calls must be positive", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("moe_profile: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    from harness.device import provenance
    threads = None
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        threads = {"threads": torch.get_num_threads(), "cores": os.cpu_count()}
    inputs = moe_layer.setup(args.size, device, 0)
    ex = moe_layer.EXAMPLE
    report = {"name": "moe_profile", "provenance": provenance(device, size=args.size, threads=threads),
              "tokens": inputs["x"].shape[0], "variants": [], "skipped": {}}
    tables = []
    with torch.no_grad():
        for v in ex.variants():
            why = v.requires.unmet(device)
            if why:
                report["skipped"][v.name] = why
                continue
            row, table = profile_variant(v.name, v.fn, inputs, device, calls=args.calls)
            row["tokens_per_s"] = report["tokens"] / (row["wall_us_per_call"] * 1e-6)
            report["variants"].append(row)
            tables.append(table)
            busy = f", GPU busy {row['gpu_busy_fraction']:.0%}" if "gpu_busy_fraction" in row else ""
            print(f"{v.name:>12}: {row['wall_us_per_call']:9.1f} us/call, {row['host_syncs_per_call']:.0f} host syncs"
                  f"{busy}; top: {row['top'][0]['name']} ({(row['top'][0]['share'] or 0):.0%})", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
