"""One variant of one example, in a process of its own, for a profiler to watch.

The runner starts this under Nsight Compute, Nsight Systems or on its own (for torch.profiler). What
is profiled is the example's own work and nothing around it: inputs are built and the variant warmed
up first (module load, cuBLAS handles, autotuning, allocator growth), then

- mode `range`: `--iters` calls sit between cudaProfilerStart/Stop and inside one NVTX push/pop
  range named by `harness.example.range_name()`, so that Nsight tools capture that region alone;
- mode `torch`: torch.profiler runs a wait/warm-up/active schedule, one step per call, each call
  inside `record_function(<range name>)`; the figures are taken from the whole Chrome trace, then a
  trimmed copy (profiling/torch_trace.py) is written with the rank HTA needs, beside the
  key-averages table, to `--out`.

A call slower than `--iter-budget` seconds lowers the number of profiled calls, down to one, so that
a large size cannot make the profile run for minutes; child.json records it.

    python -m profiling.child ch1/batched_matmul.py --example-id ch1/batched_matmul \
        --variant bmm --size tiny --device cpu --mode torch --out /tmp/p
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
from pathlib import Path

import torch

from harness.device import pick_device, synchronize
from harness.example import SIZES, load_example, range_name
from profiling import torch_trace


@contextlib.contextmanager
def nvtx_range(name: str, device: torch.device):
    """A push/pop range in NVTX's default domain, which is what `--nvtx-include "name/"` matches."""
    if device.type != "cuda":
        yield
        return
    torch.cuda.nvtx.range_push(name)
    try:
        yield
    finally:
        torch.cuda.nvtx.range_pop()


def run_range(fn, inputs, device: torch.device, name: str, iters: int) -> dict:
    """The region Nsight tools see: cudaProfilerStart, the NVTX range, `iters` calls, a sync, Stop."""
    info = {}
    started = False
    if device.type == "cuda":
        try:
            torch.cuda.profiler.start()
            started = True
        except Exception as exc:  # recorded: without it a capture range that waits for Start sees nothing
            info["profiler_api"] = f"cudaProfilerStart failed: {type(exc).__name__}: {exc}"[:300]
    t0 = time.perf_counter()
    try:
        with nvtx_range(name, device):
            for _ in range(iters):
                fn(inputs)
            synchronize(device)  # the range must hold the kernels' execution, not just their launch
    finally:
        if started:
            torch.cuda.profiler.stop()
    return {**info, "range_ms": (time.perf_counter() - t0) * 1e3}


def run_torch_profiler(fn, inputs, device: torch.device, name: str, active: int, out: Path,
                       max_events: int = torch_trace.MAX_EVENTS, wait: int = 1, warmup: int = 1) -> dict:
    """torch.profiler over `wait + warmup + active` steps; writes trace/trace.json (trimmed) and key_averages.txt."""
    from torch.profiler import ProfilerActivity, profile, record_function, schedule

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    trace_dir = out / "trace"  # alone in its folder: HTA reads every .json it finds there
    trace_dir.mkdir(parents=True, exist_ok=True)
    trace = trace_dir / "trace.json"

    def on_ready(prof) -> None:
        prof.export_chrome_trace(str(trace))

    with profile(activities=activities, schedule=schedule(wait=wait, warmup=warmup, active=active, repeat=1),
                 on_trace_ready=on_ready) as prof:
        for _ in range(wait + warmup + active):
            with record_function(name):
                fn(inputs)
                synchronize(device)
            prof.step()
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    (out / "key_averages.txt").write_text(prof.key_averages().table(sort_by=sort_by, row_limit=25) + "\n")
    before = trace.stat().st_size
    data = json.loads(trace.read_text())
    metrics = torch_trace.summarize_events(data.get("traceEvents", []), name)  # from the whole trace
    data, trim = torch_trace.trim(data, name, max_events)
    trim.update(bytes_before=before, bytes_after=torch_trace.write(trace, torch_trace.add_rank(data)))
    return {"trace": str(trace.relative_to(out)), "steps": {"wait": wait, "warmup": warmup, "active": active},
            "activities": [a.name for a in activities], "trace_metrics": metrics, "trim": trim}


def warm_up(fn, inputs, device: torch.device, warmup: int) -> float:
    """`warmup` calls (at least one); the seconds the last one took, synchronized."""
    seconds = 0.0
    for _ in range(max(1, warmup)):
        t0 = time.perf_counter()
        fn(inputs)
        synchronize(device)
        seconds = time.perf_counter() - t0
    return seconds


def capped_iters(iters: int, call_s: float, budget_s: float) -> int:
    """As many calls as fit in `budget_s`, at least one, at most `iters`."""
    return max(1, min(iters, int(budget_s / call_s))) if call_s > 0 else iters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m profiling.child", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--example-id", required=True, help="chN/name, for the range name")
    parser.add_argument("--variant", required=True)
    parser.add_argument("--size", choices=SIZES, required=True)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["range", "torch"], required=True)
    parser.add_argument("--iters", type=int, default=1, help="calls in the range, or active profiler steps")
    parser.add_argument("--warmup", type=int, default=2, help="calls before anything is profiled (at least one)")
    parser.add_argument("--iter-budget", type=float, default=2.0, help="seconds of profiled calls, at most (one call always)")
    parser.add_argument("--trace-max-events", type=int, default=torch_trace.MAX_EVENTS)
    parser.add_argument("--out", type=Path, required=True, help="folder for child.json and torch artifacts")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    name = range_name(args.example_id, args.variant)
    result = {"status": "ok", "reason": "", "range": name, "mode": args.mode, "iters": args.iters,
              "warmup": args.warmup, "seed": args.seed, "size": args.size}
    try:
        device = pick_device(args.device)
        ex = load_example(args.file)
        variants = {v.name: v for v in ex.variants()}
        if args.variant not in variants:
            result.update(status="failed", reason=f"no variant {args.variant!r}; it has: {', '.join(variants)}")
        elif unmet := ex.requires.unmet(device) or variants[args.variant].requires.unmet(device):
            result.update(status="skipped", reason=unmet)
        else:
            fn = variants[args.variant].fn
            inputs = ex.make_inputs(args.size, device, args.seed)
            with torch.no_grad():
                call_s = warm_up(fn, inputs, device, args.warmup)
                iters = capped_iters(args.iters, call_s, args.iter_budget)
                result.update(call_ms=call_s * 1e3, iters=iters)
                if iters < args.iters:
                    result["iters_capped_from"] = args.iters
                if args.mode == "range":
                    result.update(run_range(fn, inputs, device, name, iters))
                else:
                    result.update(run_torch_profiler(fn, inputs, device, name, iters, args.out, args.trace_max_events))
    except Exception as exc:  # the parent records it as this variant's status
        traceback.print_exc()
        result.update(status="failed", reason=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
    (args.out / "child.json").write_text(json.dumps(result, indent=1))
    return 0 if result["status"] != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
