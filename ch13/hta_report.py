"""Holistic Trace Analysis (HTA) of the profiled training steps: where the GPU's time went, per variant.

    python -m ch13.hta_report TRACE_DIR [--out DIR]

TRACE_DIR holds the gzipped Chrome traces `profile_train_step.py --trace-dir` records (`baseline.json.gz`,
`no_host_sync.json.gz`, `fused_adamw.json.gz`). For each, three of HTA's analyses (through
`profiling/hta_summary.py`, CSVs per variant in DIR/<variant>/):
- temporal breakdown: the share of the profiled span the GPU spent in compute kernels, in other GPU work
  (copies, memsets) and idle;
- GPU kernel breakdown: kernel time by kind (computation, memory) and the top kernels;
- idle time breakdown: why each stream sat idle: `host wait` (the host had not launched the next kernel
  yet: the host is the bottleneck), `kernel wait` (short gaps between back-to-back kernels: launch
  overhead) or `other` (waits on a sync, an event, a copy).
DIR gets hta_report.json (HTA's figures per variant beside our own `trace_summary.py` idle fraction,
computed from the same trace) and hta_breakdown.png (needs matplotlib; otherwise skipped with the reason).

Reading it (what to expect): the baseline's `.item()` each step makes the host wait for the GPU and then
the GPU wait for the host (host wait); `no_host_sync` lets the host run ahead, so that share should fall;
the for-loop AdamW's many small kernels should show as kernel wait and as a long tail of element-wise
kernels in the kernel breakdown, which `fused_adamw` removes. HTA counts idle time per stream and from the
first to the last kernel of the trace, ours over the union of all GPU work within the ProfilerStep ranges:
they need not agree to the digit.

HTA is optional (`pip install HolisticTraceAnalysis`; it needs pandas < 3 and plotly). Without it the
report says so in one line and exits 0. HTA needs GPU kernels: on a CPU-only trace its analyses are
recorded as unavailable, with the reason.

Bound: none of its own; parsing a trace takes seconds (HTA reads the whole JSON into a DataFrame).
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import tempfile
import warnings
from pathlib import Path

from ch13 import trace_summary
from ch13.train_common import PHASES

IDLE_CATEGORIES = ("host_wait", "kernel_wait", "other")


def hta_missing() -> str | None:
    """None where HTA imports, else why not (one line)."""
    try:
        from hta.trace_analysis import TraceAnalysis  # noqa: F401
    except Exception as exc:  # not installed, or a dependency missing or too new (pandas >= 3)
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return None


def with_rank(src: Path, dst: Path) -> dict:
    """Copy a (gzipped) Chrome trace to plain JSON at `dst`, adding `distributedInfo` (rank 0): HTA reads each
    trace of a folder as one rank's and takes the rank from there. Returns the trace's events (ph X)."""
    opener = gzip.open if src.name.endswith(".gz") else open
    with opener(src, "rt") as f:
        trace = json.load(f)
    trace.setdefault("distributedInfo", {"rank": 0, "world_size": 1, "backend": "none"})
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(trace))
    return [e for e in trace.get("traceEvents", []) if e.get("ph") == "X"]


def idle_by_category(hta_result: dict) -> dict[str, float] | None:
    """Idle time (ms) per category, summed over the streams, from profiling.hta_summary's result."""
    idle = hta_result.get("analyses", {}).get("idle")
    if not isinstance(idle, dict):
        return None
    totals = dict.fromkeys(IDLE_CATEGORIES, 0.0)
    for row in idle["idle_time"]:
        key = str(row.get("idle_category")).replace(" ", "_")
        totals[key] = totals.get(key, 0.0) + float(row.get("idle_time") or 0.0) / 1e3  # HTA's times are in us
    return totals


def report(trace_dir: Path, out: Path) -> dict:
    """HTA's three analyses for every trace in `trace_dir`, and ours beside them."""
    from profiling import hta_summary

    traces = sorted(trace_dir.glob("*.json.gz")) + sorted(trace_dir.glob("*.json"))
    missing = hta_missing()
    result = {"trace_dir": str(trace_dir), "hta": "not installed: " + missing if missing else "ok", "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for path in traces:
            name = path.name.split(".")[0]
            folder = Path(tmp) / name
            events = with_rank(path, folder / "rank0.json")
            ours = trace_summary.summarize(events, PHASES, top=5)
            row = {"ours": {"gpu_idle_fraction": ours["gpu_idle_fraction"], "step_ms": ours["step_ms"],
                            "kernels_per_step": ours["kernels_per_step"]}}
            if not missing:
                with warnings.catch_warnings():  # HTA's pandas idioms warn on newer pandas; its log is chatty
                    warnings.simplefilter("ignore", FutureWarning)
                    logging.getLogger("hta").setLevel(logging.WARNING)
                    full = hta_summary.summarize(folder, out / name)
                row["hta"] = {"status": full["status"], "reason": full["reason"], "headline": full["headline"],
                              "idle_ms_by_category": idle_by_category(full),
                              "analyses": {k: v for k, v in full["analyses"].items() if isinstance(v, str)}}
            result["variants"][name] = row
    return result


def draw(result: dict, path: Path) -> str | None:
    """Two panels per variant: HTA's temporal breakdown and its idle time by cause. Returns why not, or None."""
    rows = {k: v["hta"] for k, v in result["variants"].items() if v.get("hta", {}).get("status") == "ok"}
    if not rows:
        return "no HTA analysis to draw"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"matplotlib not installed ({exc})"
    names = list(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 1.6 + 0.6 * len(names)))
    parts = (("compute_pct", "compute", "tab:green"), ("non_compute_pct", "other GPU work", "tab:blue"),
             ("idle_pct", "idle", "tab:red"))
    start = [0.0] * len(names)
    for key, label, color in parts:
        vals = [float(rows[n]["headline"].get(key) or 0.0) for n in names]
        left.barh(names, vals, left=start, color=color, label=label)
        start = [s + v for s, v in zip(start, vals, strict=True)]
    left.set_xlabel("% of the profiled span (HTA temporal breakdown)")
    left.legend(fontsize=8, ncol=3, loc="lower left", bbox_to_anchor=(0, 1.0))
    start = [0.0] * len(names)
    for cat, color in zip(IDLE_CATEGORIES, ("tab:orange", "tab:purple", "tab:gray"), strict=True):
        vals = [(rows[n]["idle_ms_by_category"] or {}).get(cat, 0.0) for n in names]
        right.barh(names, vals, left=start, color=color, label=cat.replace("_", " "))
        start = [s + v for s, v in zip(start, vals, strict=True)]
    right.set_xlabel("idle ms, summed over streams (HTA idle time breakdown)")
    right.set_yticks([])
    right.legend(fontsize=8, ncol=3, loc="lower left", bbox_to_anchor=(0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def text(result: dict) -> str:
    lines = [f"HTA {result['hta']}"] if result["hta"] != "ok" else []
    for name, row in result["variants"].items():
        idle = row["ours"]["gpu_idle_fraction"]
        line = f"{name:>14}: ours: GPU idle " + ("-" if idle is None else f"{100 * idle:.1f}%")
        hta = row.get("hta")
        if hta and hta["status"] == "ok":
            h = hta["headline"]
            line += (f"; HTA: compute {h.get('compute_pct', 0):.1f}%, other {h.get('non_compute_pct', 0):.1f}%, "
                     f"idle {h.get('idle_pct', 0):.1f}%, idle mostly {h.get('idle_main_cause', '-')}")
        elif hta:
            line += f"; HTA {hta['status']}: {hta['reason']}"
        lines.append(line)
    return "\n".join(lines)


def traces_provenance(profile_json: Path | None) -> dict:
    """Where the traces came from: the profiling run's provenance when its JSON is given (the GPU, the git SHA),
    else this machine's (the analysis itself runs on the CPU)."""
    if profile_json is not None and profile_json.is_file():
        return {**json.loads(profile_json.read_text()).get("provenance", {}), "analysed_by": "ch13.hta_report"}
    import torch

    from harness.device import provenance
    return provenance(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def rows(result: dict) -> list[dict]:
    """One flat row per variant: ours beside HTA's headline (README tables)."""
    out = []
    for name, row in result["variants"].items():
        idle = row["ours"]["gpu_idle_fraction"]
        flat = {"variant": name, "ours_gpu_idle_pct": None if idle is None else round(100 * idle, 2)}
        hta = row.get("hta") or {}
        if hta.get("status") == "ok":
            h, cat = hta["headline"], hta.get("idle_ms_by_category") or {}
            flat.update({"hta_compute_pct": h.get("compute_pct"), "hta_idle_pct": h.get("idle_pct"),
                         "hta_idle_mostly": h.get("idle_main_cause"),
                         **{f"idle_{k}_ms": round(v, 2) for k, v in cat.items()}})
        elif hta:
            flat["hta"] = f"{hta.get('status')}: {hta.get('reason')}"
        out.append(flat)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace_dir", type=Path, help="the --trace-dir of profile_train_step")
    parser.add_argument("--out", type=Path, help="default: <trace_dir>/../hta")
    parser.add_argument("--profile-json", type=Path,
                        help="profile_train_step's --json for these traces: its provenance is the traces' own")
    args = parser.parse_args(argv)
    if not args.trace_dir.is_dir() or not any(args.trace_dir.glob("*.json*")):
        print(f"hta_report: {args.trace_dir} is not a folder of traces", file=sys.stderr)
        return 2
    out = args.out or args.trace_dir.parent / "hta"
    out.mkdir(parents=True, exist_ok=True)
    result = {"provenance": traces_provenance(args.profile_json), **report(args.trace_dir, out)}
    result["rows"] = rows(result)
    why_not = draw(result, out / "hta_breakdown.png")
    result["picture"] = "hta_breakdown.png" if why_not is None else f"skipped: {why_not}"
    (out / "hta_report.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(text(result))
    if why_not and result["hta"] == "ok":
        print(f"picture skipped: {why_not}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
