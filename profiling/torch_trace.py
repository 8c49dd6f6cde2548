"""torch.profiler's Chrome trace: per-step figures, and a trimmed copy that keeps the profiled range.

A trace holds one event per operator, runtime call, kernel and flow arrow, so a variant that launches
many small kernels writes hundreds of megabytes for a few steps. The figures are computed from the
whole trace; what is kept on disk is

- every metadata event (process and thread names, which the viewers and HTA need);
- the profiled range, one instance (one call of the variant) at a time, while the kept events stay
  within `max_events`: an instance's CPU events are those that start inside it, its GPU events those
  launched from it (by correlation id), with the ProfilerStep around it and its flow arrows;
- at most `max_outside` of the other events, earliest first (by default a twentieth of `max_events`,
  at least 100).

If the first instance alone is larger than `max_events`, its earliest `max_events` events are kept;
if the range is not in the trace at all, the earliest `max_events` events.
`trim()` says what it dropped, so the summary can say it too.
"""
from __future__ import annotations

import bisect
import json
from pathlib import Path

MAX_EVENTS = 20_000        # about 6 MB of JSON: enough for HTA and a viewer, small enough to keep per variant
GPU_CATEGORIES = {"kernel", "gpu_memcpy", "gpu_memset", "gpu_user_annotation"}


def summarize_events(events: list[dict], range_name: str | None = None) -> dict:
    """Per profiled step: GPU kernel time and count, copies, and the CPU wall time of the variant's range."""
    events = [e for e in events if e.get("ph") == "X"]
    steps = max(1, sum(1 for e in events if str(e.get("name", "")).startswith("ProfilerStep#")))
    by_cat: dict[str, list[float]] = {}
    for e in events:
        by_cat.setdefault(e.get("cat", ""), []).append(float(e.get("dur", 0)))
    ranges = [float(e.get("dur", 0)) for e in events if e.get("cat") == "user_annotation"
              and (e.get("name") == range_name if range_name else str(e.get("name", "")).startswith("aisp."))]
    kernels = by_cat.get("kernel", [])
    copies = by_cat.get("gpu_memcpy", []) + by_cat.get("gpu_memset", [])
    memcpy = [e for e in events if e.get("cat") == "gpu_memcpy"]
    copied = sum(float((e.get("args") or {}).get("bytes", 0)) for e in memcpy)
    copy_us = sum(float(e.get("dur", 0)) for e in memcpy)
    return {
        "steps": steps,
        "cpu_ms_per_step": sum(ranges) / len(ranges) / 1e3 if ranges else None,
        "kernels_per_step": len(kernels) / steps,
        "kernel_ms_per_step": sum(kernels) / steps / 1e3 if kernels else None,
        "copies_per_step": len(copies) / steps,
        "copy_ms_per_step": sum(copies) / steps / 1e3 if copies else None,
        "copy_gbps": copied / copy_us / 1e3 if copied and copy_us else None,  # bytes per us / 1e3 = GB/s
    }


def summarize_torch_trace(trace: Path, range_name: str | None = None) -> dict:
    return summarize_events(json.loads(trace.read_text()).get("traceEvents", []), range_name)


def _correlation(e: dict):
    return (e.get("args") or {}).get("correlation")


def _instances(events: list[dict], range_name: str) -> list[int | None]:
    """For each event: the index of the range instance it belongs to, or None (outside, or metadata)."""
    windows = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in events
                     if e.get("ph") == "X" and e.get("cat") == "user_annotation" and e.get("name") == range_name)
    starts = [w[0] for w in windows]

    def window_of(ts: float) -> int | None:
        i = bisect.bisect_right(starts, ts) - 1
        return i if i >= 0 and ts <= windows[i][1] else None

    owner: list[int | None] = [None] * len(events)
    by_corr: dict = {}
    for i, e in enumerate(events):  # CPU side first: what starts inside an instance is its own
        if e.get("ph") == "M" or e.get("cat") in GPU_CATEGORIES or e.get("ph") in ("s", "f", "t") or "ts" not in e:
            continue
        if str(e.get("name", "")).startswith("ProfilerStep#"):  # the step around an instance goes with it
            j = bisect.bisect_left(starts, float(e["ts"]))
            owner[i] = j if j < len(windows) and windows[j][0] <= float(e["ts"]) + float(e.get("dur", 0)) else None
            continue
        owner[i] = window_of(float(e["ts"]))
        if owner[i] is not None and _correlation(e) is not None:
            by_corr[_correlation(e)] = owner[i]
    gpu_ranges = sorted(float(e["ts"]) for e in events
                        if e.get("cat") == "gpu_user_annotation" and e.get("name") == range_name)
    for i, e in enumerate(events):  # then the GPU side and the flow arrows, through the launch that caused them
        if e.get("ph") in ("s", "f", "t"):
            owner[i] = by_corr.get(e.get("id"))
        elif e.get("cat") in GPU_CATEGORIES:
            owner[i] = by_corr.get(_correlation(e))
            if owner[i] is None and e.get("name") == range_name and e.get("ts") is not None:
                owner[i] = gpu_ranges.index(float(e["ts"]))   # the GPU-side copy of the range, by order
    return owner


def trim(trace: dict, range_name: str, max_events: int = MAX_EVENTS, max_outside: int | None = None) -> tuple[dict, dict]:
    """(trimmed trace, report); the trace is returned as is when it is within `max_events + max_outside`."""
    max_outside = max(100, max_events // 20) if max_outside is None else max_outside
    events = trace.get("traceEvents", [])
    owner = _instances(events, range_name)
    n_instances = 1 + max((o for o in owner if o is not None), default=-1)
    meta = [i for i, e in enumerate(events) if e.get("ph") == "M"]
    outside = [i for i, o in enumerate(owner) if o is None and events[i].get("ph") != "M"]
    if n_instances == 0:  # the range is not in the trace (a bug, or a renamed range): keep its start instead
        max_outside = max_events
    per_instance: list[list[int]] = [[] for _ in range(n_instances)]
    for i, o in enumerate(owner):
        if o is not None:
            per_instance[o].append(i)
    report = {"events": len(events), "instances": n_instances, "outside": len(outside), "trimmed": False}
    if len(events) - len(meta) <= max_events + max_outside:
        return trace, {**report, "kept_events": len(events), "kept_instances": n_instances, "kept_outside": len(outside)}

    kept, kept_instances, cut = list(meta), 0, False
    for members in per_instance:
        if kept_instances and len(kept) - len(meta) + len(members) > max_events:
            break
        if len(members) > max_events:  # the first instance alone is too large: its earliest events
            members = sorted(members, key=lambda i: float(events[i].get("ts", 0)))[:max_events]
            cut = True
        kept += members
        kept_instances += 1
    kept_outside = sorted(outside, key=lambda i: float(events[i].get("ts") or 0))[:max_outside]
    keep = set(kept) | set(kept_outside)
    trimmed = {**trace, "traceEvents": [e for i, e in enumerate(events) if i in keep]}
    report.update(trimmed=True, kept_events=len(keep), kept_instances=kept_instances, kept_outside=len(kept_outside),
                  first_instance_cut=cut, max_events=max_events, max_outside=max_outside)
    return trimmed, report


def describe_trim(report: dict | None) -> str:
    """One phrase for the summary: `whole` or what was kept of what."""
    if not report:
        return "-"
    if not report.get("trimmed"):
        return "whole"
    mb = lambda n: f"{n / 1e6:.3g} MB"  # noqa: E731
    size = f", {mb(report['bytes_after'])} of {mb(report['bytes_before'])}" if "bytes_before" in report else ""
    cut = " (first call cut)" if report.get("first_instance_cut") else ""
    return (f"kept {report['kept_events']} of {report['events']} events: {report['kept_instances']} of "
            f"{report['instances']} calls{cut}, {report['kept_outside']} of {report['outside']} outside{size}")


def add_rank(data: dict) -> dict:
    """A single-process trace has no distributedInfo; HTA needs a rank, so say rank 0 of 1."""
    data.setdefault("distributedInfo", {"rank": 0, "world_size": 1})
    return data


def write(trace: Path, data: dict) -> int:
    """Written with json's default separators: HTA finds the rank with the pattern `"rank": <n>`."""
    text = json.dumps(data)
    trace.write_text(text)
    return len(text.encode())
