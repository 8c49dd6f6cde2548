"""`nsys stats` CSV reports to JSON: GPU kernels, CUDA API calls and NVTX ranges, with a short summary.

Give it the `--output` prefix that `nsys stats --format csv` was run with (it writes one file per
report, `<prefix>_<report>.csv`), or a folder holding such files.

    nsys stats --report cuda_gpu_kern_sum,cuda_api_sum,nvtx_sum,cuda_gpu_mem_time_sum --format csv \
        --output out/stats out/report.nsys-rep
    python -m profiling.nsys_summary out/stats [--json out/nsys_summary.json]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

REPORTS = ("cuda_gpu_kern_sum", "cuda_api_sum", "nvtx_sum", "cuda_gpu_mem_time_sum")


def _number(text: str):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return text


def read_report(path: Path) -> list[dict]:
    """Rows as dicts; numbers parsed. Anything before the header line (nsys's notices) is skipped."""
    lines = path.read_text(errors="replace").splitlines()
    start = next((i for i, ln in enumerate(lines) if "Time" in ln and "," in ln), None)
    if start is None:
        return []
    reader = csv.DictReader(io.StringIO("\n".join(lines[start:])))
    return [{k.strip(): _number(v.strip()) for k, v in row.items() if k is not None and v is not None} for row in reader]


def find_reports(prefix_or_dir: Path) -> dict[str, Path]:
    if prefix_or_dir.is_dir():
        files = list(prefix_or_dir.glob("*.csv"))
    else:
        files = list(prefix_or_dir.parent.glob(prefix_or_dir.name + "_*.csv"))
    found = {}
    for report in REPORTS:
        hits = [f for f in files if f.stem.endswith(report)]
        if hits:
            found[report] = sorted(hits)[0]
    return found


def _column(row: dict, *names: str):
    """The first column whose name starts with one of `names` (nsys renames columns between versions)."""
    for want in names:
        for key, value in row.items():
            if key.lower().startswith(want):
                return value
    return None


def _table(rows: list[dict], label: tuple[str, ...], top: int) -> list[dict]:
    out = []
    for r in rows:
        total, count = _column(r, "total time"), _column(r, "instances", "num calls", "count")
        out.append({"name": str(_column(r, *label))[:160], "total_ms": total / 1e6 if isinstance(total, float) else None,
                    "instances": int(count) if isinstance(count, float) else count})
    return sorted(out, key=lambda e: -(e["total_ms"] or 0))[:top]


def summarize(reports: dict[str, list[dict]], top: int = 5) -> dict:
    kern, api, nvtx, mem = (reports.get(r, []) for r in REPORTS)
    total = lambda rows: sum(v for r in rows if isinstance(v := _column(r, "total time"), float)) / 1e6  # noqa: E731
    count = lambda rows: sum(v for r in rows if isinstance(v := _column(r, "instances", "num calls", "count"), float))  # noqa: E731
    return {
        "kernel_time_ms": total(kern) if kern else None,
        "kernel_instances": int(count(kern)) if kern else None,
        "distinct_kernels": len(kern),
        "memcpy_time_ms": total(mem) if mem else None,   # copies and memsets on the GPU
        "memcpy_count": int(count(mem)) if mem else None,
        "cuda_api_time_ms": total(api) if api else None,
        "cuda_api_calls": int(count(api)) if api else None,
        "top_kernels": _table(kern, ("name",), top),
        "top_api": _table(api, ("name",), top),
        "top_memory_ops": _table(mem, ("operation", "name"), top),
        "nvtx_ranges": _table(nvtx, ("range", "name"), top),
    }


def extract(prefix_or_dir: Path) -> dict:
    paths = find_reports(prefix_or_dir)
    reports = {name: read_report(p) for name, p in paths.items()}
    return {"summary": summarize(reports), "reports": reports, "missing": [r for r in REPORTS if r not in paths]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m profiling.nsys_summary", description=__doc__.splitlines()[0])
    parser.add_argument("prefix", type=Path, help="the --output prefix given to nsys stats, or a folder of its CSVs")
    parser.add_argument("--json", type=Path, help="write here (default: print)")
    args = parser.parse_args(argv)
    result = extract(args.prefix)
    if not result["reports"]:
        print(f"nsys_summary: no nsys stats CSV found for {args.prefix}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
