"""What a torch.profiler trace of training steps says, computed here from its Chrome-trace JSON.

- time per phase: the named ranges of `train_common.phase` (data, forward, backward, optimizer), per step;
  on CUDA the GPU side of each range (`gpu_user_annotation`: first kernel start to last kernel end of the
  range), beside the host side (`user_annotation`);
- kernel breakdown: the top kernels by total GPU time, with their share of all kernel time;
- GPU idle fraction: the share of the profiled steps' span (from the first ProfilerStep# range's start, on
  the host clock the trace shares with the GPU's, to the later of the last range's end and the last GPU
  work's end) in which no kernel, copy or memset ran: one minus the union of their intervals.

The same figures HTA's temporal and kernel breakdowns give, without HTA (not installed on every node).

    python -m ch13.trace_summary trace.json [--top 10]
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path

GPU_BUSY = {"kernel", "gpu_memcpy", "gpu_memset"}


def load_events(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return [e for e in json.load(f).get("traceEvents", []) if e.get("ph") == "X"]


def _union_us(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end) intervals."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + (cur_e - cur_s if cur_e is not None else 0.0)


def step_span(events: list[dict]) -> tuple[float, float, int] | None:
    """(start, end, steps) of the ProfilerStep# ranges, or None when the trace has none."""
    # the host's ranges only: on CUDA each step also has a GPU-side copy (gpu_user_annotation)
    steps = [e for e in events if str(e.get("name", "")).startswith("ProfilerStep#")
             and e.get("cat") != "gpu_user_annotation"]
    if not steps:
        return None
    return min(e["ts"] for e in steps), max(e["ts"] + e["dur"] for e in steps), len(steps)


def phase_times(events: list[dict], phases, steps: int) -> dict:
    """ms per step for each phase: host side and, where the trace has it, GPU side."""
    out = {}
    for name in phases:
        host = [e["dur"] for e in events if e.get("cat") == "user_annotation" and e.get("name") == name]
        gpu = [e["dur"] for e in events if e.get("cat") == "gpu_user_annotation" and e.get("name") == name]
        out[name] = {"host_ms": sum(host) / steps / 1e3 if host else None,
                     "gpu_ms": sum(gpu) / steps / 1e3 if gpu else None}
    return out


def kernel_top(events: list[dict], top: int, steps: int) -> list[dict]:
    by_name: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "kernel":
            by_name[e.get("name", "?")].append(float(e["dur"]))
    total = sum(sum(v) for v in by_name.values()) or 1.0
    rows = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:top]
    return [{"kernel": name[:120], "ms_per_step": sum(d) / steps / 1e3, "calls_per_step": len(d) / steps,
             "share": sum(d) / total} for name, d in rows]


def summarize(events: list[dict], phases=(), top: int = 10) -> dict:
    span = step_span(events)
    busy = [(float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in events if e.get("cat") in GPU_BUSY]
    steps = span[2] if span else 1
    result = {"steps": steps, "phases": phase_times(events, phases, steps),
              "kernels_per_step": sum(1 for e in events if e.get("cat") == "kernel") / steps,
              "kernel_ms_per_step": sum(e["dur"] for e in events if e.get("cat") == "kernel") / steps / 1e3,
              "top_kernels": kernel_top(events, top, steps), "gpu_idle_fraction": None, "step_ms": None}
    if span:
        start, end, _ = span
        # The GPU may finish the steps' work after the host left the last step (the host runs ahead):
        # the span ends when the later of the two does. Work before the first step is not part of it.
        busy = [(max(s, start), e) for s, e in busy if e > start]
        end = max([end] + [e for _, e in busy])
        result["step_ms"] = (end - start) / steps / 1e3
        if busy:
            result["gpu_idle_fraction"] = 1.0 - _union_us(busy) / (end - start)
    return result


def text(summary: dict) -> str:
    lines = [f"{summary['steps']} steps, {summary['step_ms'] or float('nan'):.2f} ms per step (profiled), "
             f"{summary['kernels_per_step']:.0f} kernels per step"]
    if summary["gpu_idle_fraction"] is not None:
        lines.append(f"GPU idle {100 * summary['gpu_idle_fraction']:.1f}% of the steps' span")
    for name, t in summary["phases"].items():
        fmt = lambda v: "-" if v is None else f"{v:.2f} ms"  # noqa: E731
        lines.append(f"  {name:>10}: host {fmt(t['host_ms'])}, GPU {fmt(t['gpu_ms'])}")
    for k in summary["top_kernels"]:
        lines.append(f"  {100 * k['share']:5.1f}%  {k['ms_per_step']:.3f} ms  x{k['calls_per_step']:.0f}  {k['kernel'][:80]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    if not args.trace.is_file():
        print(f"trace_summary: no such file: {args.trace}", file=sys.stderr)
        return 2
    print(text(summarize(load_events(args.trace), ("data", "forward", "backward", "optimizer"), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
