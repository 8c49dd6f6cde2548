"""Overlap read from a torch profiler trace: how much copy time ran under a kernel, and a timeline picture.

The trace is the Chrome-format JSON that `torch.profiler.profile(...).export_chrome_trace()` writes.
Its GPU activities are complete events (`"ph": "X"`) with `cat` "kernel", "gpu_memcpy" or
"gpu_memset", a start `ts` and a `dur` in microseconds, and the stream in `args.stream` (else `tid`).

The measured overlap is the fraction of copy time hidden under compute: for every host<->device copy,
the part of it during which at least one kernel was running on the same device, summed, over the total
copy time. 0 means every copy ran alone (one stream); 1 means every copy was covered by a kernel. Each
direction has its own copy engine, so each can hide under the same kernel time: at most
min(copy time, kernel time) per direction can be hidden, which `hideable` reports beside it (as a fraction).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

KINDS = ("h2d", "d2h", "d2d", "kernel", "memset")
COLORS = {"h2d": "#1f77b4", "d2h": "#ff7f0e", "d2d": "#9467bd", "kernel": "#2ca02c", "memset": "#7f7f7f"}
LABELS = {"h2d": "copy host -> device", "d2h": "copy device -> host", "d2d": "copy device -> device",
          "kernel": "kernel", "memset": "memset"}


@dataclass(frozen=True)
class GpuOp:
    kind: str        # one of KINDS
    name: str
    device: int
    stream: int
    start_us: float
    end_us: float

    @property
    def dur_us(self) -> float:
        return self.end_us - self.start_us


def _copy_kind(name: str) -> str:
    """'Memcpy HtoD (Pinned -> Device)' -> 'h2d'; device-to-device and peer copies -> 'd2d'."""
    upper = name.upper()
    if "HTOD" in upper:
        return "h2d"
    if "DTOH" in upper:
        return "d2h"
    return "d2d"


def gpu_ops(trace: dict) -> list[GpuOp]:
    """Every kernel, copy and memset in a Chrome trace, sorted by start time."""
    ops = []
    for e in trace.get("traceEvents", []):
        cat = e.get("cat")
        if e.get("ph") != "X" or cat not in ("kernel", "gpu_memcpy", "gpu_memset"):
            continue
        args = e.get("args") or {}
        kind = "kernel" if cat == "kernel" else "memset" if cat == "gpu_memset" else _copy_kind(str(e.get("name", "")))
        start = float(e["ts"])
        ops.append(GpuOp(kind, str(e.get("name", "")), int(args.get("device", e.get("pid", 0)) or 0),
                         int(args.get("stream", e.get("tid", 0)) or 0), start, start + float(e.get("dur", 0.0))))
    return sorted(ops, key=lambda o: (o.start_us, o.end_us))


def load_trace(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of intervals, as sorted disjoint intervals (empty ones dropped)."""
    out: list[list[float]] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def covered(start: float, end: float, merged: list[tuple[float, float]]) -> float:
    """Length of [start, end) that lies inside the union `merged` (as merge() returns it)."""
    return sum(max(0.0, min(end, e) - max(start, s)) for s, e in merged if s < end and e > start)


def overlap_summary(ops: list[GpuOp]) -> dict:
    """Copy time, the part of it hidden under kernels, and the GPU's busy span, in microseconds."""
    copies = [o for o in ops if o.kind in ("h2d", "d2h")]
    kernels = [o for o in ops if o.kind == "kernel"]
    devices = sorted({o.device for o in ops})
    busy_by_device = {d: merge([(o.start_us, o.end_us) for o in kernels if o.device == d]) for d in devices}

    def hidden(sel: list[GpuOp]) -> float:
        return sum(covered(o.start_us, o.end_us, busy_by_device[o.device]) for o in sel)

    copy_us = sum(o.dur_us for o in copies)
    kernel_us = sum(e - s for spans in busy_by_device.values() for s, e in spans)  # union: concurrent kernels once
    hidden_us = hidden(copies)
    by_dir = {}
    for kind in ("h2d", "d2h"):
        sel = [o for o in copies if o.kind == kind]
        total = sum(o.dur_us for o in sel)
        by_dir[kind] = {"copies": len(sel), "copy_us": total, "hidden_us": hidden(sel),
                        "overlap_fraction": hidden(sel) / total if total else None}
    h2d = merge([(o.start_us, o.end_us) for o in copies if o.kind == "h2d"])
    d2h_vs_h2d = sum(covered(o.start_us, o.end_us, h2d) for o in copies if o.kind == "d2h")
    span = (max(o.end_us for o in ops) - min(o.start_us for o in ops)) if ops else 0.0
    return {
        "copy_us": copy_us,
        "kernel_us": kernel_us,
        "hidden_us": hidden_us,
        "overlap_fraction": hidden_us / copy_us if copy_us else None,
        "hideable": sum(min(d["copy_us"], kernel_us) for d in by_dir.values()) / copy_us if copy_us else None,
        "by_direction": by_dir,
        "d2h_under_h2d_us": d2h_vs_h2d,   # the two copy engines running at once
        "span_us": span,                  # first GPU op's start to the last one's end
        "serial_us": sum(o.dur_us for o in ops),  # what the ops would take back to back
        "stream_ids": sorted({o.stream for o in ops}),
        "ops": len(ops),
    }


def draw(panels: list[tuple[str, list[GpuOp]]], path: str | Path, title: str = "") -> Path:
    """One timeline per panel (streams as lanes, copies and kernels as boxes), on one time scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    lanes_per_panel = [sorted({(o.device, o.stream) for o in ops}) or [(0, 0)] for _, ops in panels]
    heights = [max(1, len(lanes)) + 1 for lanes in lanes_per_panel]
    fig = Figure(figsize=(11, 1.0 + 0.45 * sum(heights)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    longest = max((max((o.end_us for o in ops), default=0) - min((o.start_us for o in ops), default=0))
                  for _, ops in panels) / 1e3 or 1.0
    for ax, (label, ops), lanes in zip(axes, panels, lanes_per_panel, strict=True):
        t0 = min((o.start_us for o in ops), default=0.0)
        row = {lane: i for i, lane in enumerate(lanes)}
        for kind in KINDS:
            for lane in lanes:
                boxes = [((o.start_us - t0) / 1e3, o.dur_us / 1e3) for o in ops
                         if o.kind == kind and (o.device, o.stream) == lane]
                if boxes:
                    ax.broken_barh(boxes, (row[lane] - 0.38, 0.76), facecolors=COLORS[kind], edgecolor="black",
                                   linewidth=0.3)
        ax.set_yticks(range(len(lanes)))
        ax.set_yticklabels([f"stream {s}" if len({d for d, _ in lanes}) == 1 else f"gpu {d} stream {s}"
                            for d, s in lanes])
        ax.set_ylim(len(lanes) - 0.5, -0.5)
        ax.set_xlim(0, longest * 1.02)
        ax.set_title(label, fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time since the first GPU operation (ms)")
    kinds = [k for k in KINDS if any(o.kind == k for _, ops in panels for o in ops)]
    fig.legend(handles=[Patch(facecolor=COLORS[k], label=LABELS[k]) for k in kinds], loc="upper right",
               ncol=len(kinds), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    return Path(path)
