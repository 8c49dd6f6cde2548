"""Holistic Trace Analysis over a folder of torch.profiler traces: where the GPU's time went.

Three of HTA's analyses, each written as CSV, gathered in hta_summary.json with a short text summary:
- temporal breakdown: the share of the profiled span the GPU spent computing, on other work (copies,
  communication) and idle;
- GPU kernel breakdown: time by kernel type (computation, memory, communication) and the top kernels;
- idle time: why the GPU sat idle (waiting on the host, between kernels, or other).

HTA needs a rank in each trace (`distributedInfo`; the profiling harness adds rank 0). An analysis
that cannot run, because HTA is not installed or because a CPU-only trace has no GPU kernels, is
recorded as `unavailable: <reason>`; this script does not fail on it.

    python -m profiling.hta_summary profiles/<run>/ch1/batched_matmul/baseline/torch/trace --out .../hta
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def _records(df) -> list[dict]:
    """A DataFrame as JSON-safe records (numpy scalars to Python, NaN to null)."""
    out = []
    for row in df.reset_index(drop=df.index.name is None).to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            v = v.item() if hasattr(v, "item") else v
            clean[str(k)] = None if isinstance(v, float) and math.isnan(v) else v
        out.append(clean)
    return out


def _unavailable(exc: BaseException) -> str:
    return f"unavailable: {type(exc).__name__}: {exc}".splitlines()[0][:300]


def _analyses(ta) -> dict:
    """name -> zero-argument call returning {csv_name: DataFrame}."""
    def kernels():
        by_type, top = ta.get_gpu_kernel_breakdown(visualize=False)
        return {"kernel_type_breakdown": by_type, "kernel_breakdown": top}
    return {
        "temporal": lambda: {"temporal_breakdown": ta.get_temporal_breakdown(visualize=False)},
        "kernels": kernels,
        "idle": lambda: {"idle_time": ta.get_idle_time_breakdown(visualize=False)[0]},
    }


def _headline(result: dict) -> dict:
    """The few figures a summary table shows: idle/compute share and the idle time's main cause."""
    head = {}
    temporal = result["analyses"].get("temporal")
    if isinstance(temporal, dict) and temporal["temporal_breakdown"]:
        row = temporal["temporal_breakdown"][0]
        for key in ("idle_time_pctg", "compute_time_pctg", "non_compute_time_pctg"):
            if key in row:
                head[key.replace("_time_pctg", "_pct")] = row[key]
    idle = result["analyses"].get("idle")
    if isinstance(idle, dict) and idle["idle_time"]:
        totals: dict[str, float] = {}
        for r in idle["idle_time"]:
            totals[str(r.get("idle_category"))] = totals.get(str(r.get("idle_category")), 0.0) + (r.get("idle_time") or 0)
        if sum(totals.values()) > 0:
            head["idle_main_cause"] = max(totals, key=totals.get)
    kernels = result["analyses"].get("kernels")
    if isinstance(kernels, dict) and kernels["kernel_type_breakdown"]:
        head["kernel_types_pct"] = {str(r.get("kernel_type")): r.get("percentage") for r in kernels["kernel_type_breakdown"]}
    return head


def _has_gpu_events(trace_dir: Path) -> bool:
    return any('"cat": "kernel"' in p.read_text(errors="replace") for p in trace_dir.glob("*.json"))


def summarize(trace_dir: Path, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"trace_dir": str(trace_dir), "status": "ok", "reason": "", "analyses": {}, "headline": {}}
    try:
        from hta.trace_analysis import TraceAnalysis
    except Exception as exc:  # not installed, or a dependency missing (HTA needs PyYAML, pandas < 3)
        result.update(status="unavailable", reason=f"HTA not importable: {type(exc).__name__}: {exc}")
    else:
        try:
            ta = TraceAnalysis(trace_dir=str(trace_dir), include_last_profiler_step=True)
        except Exception as exc:
            result.update(status="unavailable", reason=f"HTA could not load the trace: {_unavailable(exc)[13:]}")
        else:
            for name, run in _analyses(ta).items():
                try:
                    frames = run()
                    if all(df is None or df.empty for df in frames.values()):
                        raise ValueError("no GPU kernels in the trace (a CPU-only trace?)")
                    result["analyses"][name] = {}
                    for csv_name, df in frames.items():
                        df.to_csv(out_dir / f"{csv_name}.csv", index=False)
                        result["analyses"][name][csv_name] = _records(df)
                except Exception as exc:  # HTA's analyses index into empty frames on CPU-only traces
                    result["analyses"][name] = _unavailable(exc)
            if not any(isinstance(v, dict) for v in result["analyses"].values()):
                why = "the trace has no GPU kernels (a CPU-only run)" if not _has_gpu_events(trace_dir) else \
                    "every analysis failed (see analyses)"
                result.update(status="unavailable", reason=f"HTA analyses need GPU activity: {why}")
    result["headline"] = _headline(result) if result["analyses"] else {}
    (out_dir / "hta_summary.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out_dir / "hta_summary.txt").write_text(text_summary(result) + "\n")
    return result


def text_summary(result: dict) -> str:
    if result["status"] != "ok":
        return f"HTA {result['status']}: {result['reason']}"
    lines = []
    h = result["headline"]
    if "idle_pct" in h:
        lines.append(f"GPU time: {h.get('compute_pct', 0):.1f}% compute, {h.get('non_compute_pct', 0):.1f}% other, "
                     f"{h['idle_pct']:.1f}% idle")
    if "idle_main_cause" in h:
        lines.append(f"idle time mostly: {h['idle_main_cause']}")
    for kind, pct in h.get("kernel_types_pct", {}).items():
        lines.append(f"kernel type {kind}: {pct}% of kernel time")
    for name, value in result["analyses"].items():
        if isinstance(value, str):
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m profiling.hta_summary", description=__doc__.splitlines()[0])
    parser.add_argument("trace_dir", type=Path, help="a folder of torch.profiler .json traces")
    parser.add_argument("--out", type=Path, help="default: <trace_dir>/../hta")
    args = parser.parse_args(argv)
    if not args.trace_dir.is_dir():
        print(f"hta_summary: {args.trace_dir} is not a folder", file=sys.stderr)
        return 2
    result = summarize(args.trace_dir, args.out or args.trace_dir.parent / "hta")
    print(text_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
