"""The roofline: every example's variants against the machine's ceilings, drawn from a results.json.

    python -m harness.roofline results/<run>/results.json [--out roofline.png]

A variant is a point at (arithmetic intensity, TFLOP/s), with intensity = FLOPs / bytes moved, which is
its TFLOP/s over its GB/s (the time cancels). Variants that report only one of the two have no place on
it. The ceilings are min(bandwidth x intensity, matrix rate), one per dtype the examples use, from the
measured peaks file for this GPU or the datasheet (the title says which).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness import peaks
from harness.result import ExampleResult


def points(results: dict) -> list[dict]:
    """One entry per verified variant with both GB/s and TFLOP/s."""
    out = []
    for res in map(ExampleResult.from_dict, results.get("examples", [])):
        for v in res.variants:
            if v.timed and v.gbps and v.tflops:
                out.append({"example": res.id or res.title, "variant": v.name, "role": v.role,
                            "intensity": v.tflops * 1e12 / (v.gbps * 1e9), "tflops": v.tflops,
                            "dtype": res.flops_dtype})
    return out


def plot(results: dict, out: Path, peaks_dir: Path | None = None) -> Path:
    device = results.get("run", {}).get("device", {"name": "cpu"})
    ceil = peaks.ceilings(device, peaks_dir)
    pts = points(results)
    used = {p["dtype"] for p in pts if p["dtype"]}
    roofs = {dt: v for dt, v in ceil.tflops.items() if dt in used} or ceil.tflops

    # x range: every point and every ridge (where bandwidth meets a matrix rate), with a decade of margin
    xs = [p["intensity"] for p in pts]
    if ceil.memory_gbps:
        xs += [v * 1e3 / ceil.memory_gbps for v in roofs.values()]
    lo = 10 ** math.floor(math.log10(min(xs)) - 0.5) if xs else 0.1
    hi = 10 ** math.ceil(math.log10(max(xs)) + 0.5) if xs else 1e4
    x = np.logspace(math.log10(lo), math.log10(hi), 400)

    fig = Figure(figsize=(10, 6.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for dt, peak in sorted(roofs.items(), key=lambda kv: kv[1]):
        y = np.minimum(ceil.memory_gbps * x / 1e3, peak) if ceil.memory_gbps else np.full_like(x, peak)
        ax.plot(x, y, lw=1.5, label=f"{dt}: {peak:.4g} TFLOP/s")
    if ceil.l2_gbps and roofs:   # data that stays in L2 can sit above the memory roof: show how far
        ax.plot(x, np.minimum(ceil.l2_gbps * x / 1e3, max(roofs.values())), "k--", lw=0.8,
                label=f"L2: {ceil.l2_gbps:.4g} GB/s")
    if ceil.memory_gbps and not roofs:
        ax.plot(x, ceil.memory_gbps * x / 1e3, lw=1.5, label="memory")
    colors = {ex: f"C{i % 10}" for i, ex in enumerate(dict.fromkeys(p["example"] for p in pts))}
    for p in pts:
        filled = p["role"] != "baseline"
        ax.scatter(p["intensity"], p["tflops"], s=36, color=colors[p["example"]] if filled else "none",
                   edgecolors=colors[p["example"]], zorder=3)
        ax.annotate(f"{p['example']}: {p['variant']}", (p["intensity"], p["tflops"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)   # set, not left to matplotlib: with no line or point it would draw an empty frame
    ys = [p["tflops"] for p in pts] + list(roofs.values()) + \
        ([ceil.memory_gbps * lo / 1e3] if ceil.memory_gbps else [])
    ax.set_ylim(10 ** math.floor(math.log10(min(ys)) - 0.5) if ys else 1e-3,
                10 ** math.ceil(math.log10(max(ys)) + 0.5) if ys else 1e3)
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("TFLOP/s")
    bw = f"memory {ceil.memory_gbps:.4g} GB/s, " if ceil.memory_gbps else ""
    source = ceil.source(["memory", *roofs])
    ax.set_title(f"Roofline: {device.get('name', '?')}\n{bw}ceilings: {source}", fontsize=9)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    if roofs or ceil.memory_gbps:
        ax.legend(fontsize=8, loc="lower right")
    if not pts:
        ax.text(0.5, 0.5, "no example reports both GB/s and TFLOP/s", transform=ax.transAxes, ha="center")
    if not (roofs or ceil.memory_gbps):
        ax.text(0.5, 0.42, f"no ceilings: {ceil.missing or 'none measured'} (run benchmark_peak.py)",
                transform=ax.transAxes, ha="center", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.roofline", description="Draw the roofline of a run.")
    parser.add_argument("results", type=Path, help="a results.json written by `python -m harness run`")
    parser.add_argument("--out", type=Path, help="PNG to write (default: roofline.png beside the results)")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
        out = plot(results, args.out or args.results.with_name("roofline.png"))
    except (OSError, ValueError) as exc:
        print(f"roofline: {exc}", file=sys.stderr)
        return 2
    print(f"roofline: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
