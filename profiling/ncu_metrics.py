"""Nsight Compute's CSV to JSON: one record per profiled kernel, and a duration-weighted summary.

Reads both layouts ncu writes: `--page raw` (a row per kernel, a column per metric, the units in the
second row) and the details page (a row per metric: "Metric Name", "Metric Unit", "Metric Value").
Values may carry thousands separators; times are converted to nanoseconds; "n/a" becomes null. Lines
that are not CSV (`==PROF==`, `==WARNING==`, the application's own output) are skipped.

    python -m profiling.ncu_metrics metrics.csv [--json metrics.json]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path

DURATION = "gpu__time_duration.sum"
# Summary name -> metric. Percentages are averaged over kernels weighted by each kernel's duration.
SUMMARY_METRICS = {
    "dram_pct": "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "sm_pct": "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "occupancy_pct": "sm__warps_active.avg.pct_of_peak_sustained_active",   # achieved occupancy
    "l2_hit_pct": "lts__t_sector_hit_rate.pct",
}
# Tensor-pipe utilisation: mma.sync (hmma) on every arch since Volta; wgmma (gmma) on Hopper and later.
TENSOR_METRICS = (
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
    "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active",
)
TIME_TO_NS = {"nsecond": 1.0, "ns": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6,
              "second": 1e9, "s": 1e9}
METRIC_NAME = re.compile(r"^[a-z0-9]+__[A-Za-z0-9_.]+$")  # unit__counter.rollup: a metric column
INFO_COLUMNS = {"ID": "id", "Kernel Name": "name", "Block Size": "block", "Grid Size": "grid", "Stream": "stream",
                "Device": "device", "CC": "cc"}


def parse_number(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip().replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def _csv_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith('"ID"')), None)
    if start is None:
        raise ValueError("no ncu CSV header (a line starting with \"ID\") found")
    body = [ln for ln in lines[start:] if ln.startswith('"')]
    return list(csv.reader(io.StringIO("\n".join(body))))


def _normalise(metrics: dict, units: dict) -> None:
    """Times to ns, in place, so that every run's JSON uses one unit."""
    for name, unit in list(units.items()):
        factor = TIME_TO_NS.get(unit)
        if factor is not None and metrics.get(name) is not None:
            metrics[name] *= factor
            units[name] = "ns"


def parse_csv(text: str) -> list[dict]:
    """[{id, name, block, grid, ..., metrics: {metric: value}, units: {metric: unit}}], in profiling order."""
    rows = _csv_rows(text)
    header, data = rows[0], rows[1:]
    if "Metric Name" in header:  # details page: one row per (kernel, metric)
        col = {h: i for i, h in enumerate(header)}
        kernels: dict[str, dict] = {}
        for r in data:
            if len(r) != len(header) or not r[col["Metric Name"]]:
                continue
            k = kernels.setdefault(r[col["ID"]], {**{key: r[col[h]] for h, key in INFO_COLUMNS.items() if h in col},
                                                   "metrics": {}, "units": {}})
            name = r[col["Metric Name"]]
            k["metrics"][name] = parse_number(r[col["Metric Value"]])
            k["units"][name] = r[col["Metric Unit"]] if "Metric Unit" in col else ""
        out = list(kernels.values())
    else:  # raw page: one row per kernel, a units row first
        units_row = data[0] if data and data[0] and data[0][0] == "" else None
        data = data[1:] if units_row else data
        metric_cols = [i for i, h in enumerate(header) if METRIC_NAME.match(h)]
        out = []
        for r in data:
            if len(r) != len(header):
                continue
            out.append({**{key: r[i] for i, h in enumerate(header) for hh, key in INFO_COLUMNS.items() if h == hh},
                        "metrics": {header[i]: parse_number(r[i]) for i in metric_cols},
                        "units": {header[i]: (units_row[i] if units_row else "") for i in metric_cols}})
    for k in out:
        _normalise(k["metrics"], k["units"])
    return out


def _weighted(kernels: list[dict], value_of) -> float | None:
    pairs = [(value_of(k), k["metrics"].get(DURATION)) for k in kernels]
    pairs = [(v, w) for v, w in pairs if v is not None]
    if not pairs:
        return None
    if all(w for _, w in pairs):
        return sum(v * w for v, w in pairs) / sum(w for _, w in pairs)
    return sum(v for v, _ in pairs) / len(pairs)


def _tensor_pct(kernel: dict) -> float | None:
    values = [kernel["metrics"].get(m) for m in TENSOR_METRICS]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def summarize(kernels: list[dict], top: int = 5) -> dict:
    """Kernel count, total GPU time, duration-weighted percentages and the kernels that took longest."""
    times = [k["metrics"].get(DURATION) for k in kernels]
    summary = {"kernels": len(kernels),
               "gpu_time_ms": sum(t for t in times if t) / 1e6 if any(times) else None}
    for key, metric in SUMMARY_METRICS.items():
        summary[key] = _weighted(kernels, lambda k, m=metric: k["metrics"].get(m))
    summary["tensor_pct"] = _weighted(kernels, _tensor_pct)
    by_name: dict[str, dict] = {}
    for k in kernels:
        entry = by_name.setdefault(k.get("name", "?"), {"name": k.get("name", "?")[:160], "count": 0, "time_ms": 0.0})
        entry["count"] += 1
        entry["time_ms"] += (k["metrics"].get(DURATION) or 0.0) / 1e6
    summary["top_kernels"] = sorted(by_name.values(), key=lambda e: -e["time_ms"])[:top]
    return summary


def extract(text: str) -> dict:
    kernels = parse_csv(text)
    return {"summary": summarize(kernels), "kernels": kernels}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m profiling.ncu_metrics", description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="ncu --csv output (--page raw or details)")
    parser.add_argument("--json", type=Path, help="write here (default: print)")
    args = parser.parse_args(argv)
    try:
        result = extract(args.csv.read_text(errors="replace"))
    except (OSError, ValueError) as exc:
        print(f"ncu_metrics: {args.csv}: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
