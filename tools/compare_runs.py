"""Two runs side by side: H100 vs H200, before vs after a change.

Each run is a profiling output folder (its summary.json, from scripts/profile_harness.py) or a harness
results folder (its results.json, from `python -m harness run`), or the JSON file itself. Metrics
present in both runs for the same example and variant are printed as a Markdown table with B/A.

    python tools/compare_runs.py profiles/h100-run profiles/h200-run
    python tools/compare_runs.py results/before results/after --labels before after
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.result import ExampleResult

RESULT_METRICS = ("median_ms", "gbps", "tflops", "items_per_s", "fraction_of_peak_bandwidth", "fraction_of_peak_flops")


def load(path: Path) -> dict:
    if path.is_dir():
        for name in ("summary.json", "results.json"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise ValueError(f"{path} holds neither summary.json nor results.json")
    data = json.loads(path.read_text())
    if "run" not in data or "examples" not in data:
        raise ValueError(f"{path} is not a profiling summary or a harness results file")
    return data


def flatten(data: dict) -> dict[tuple[str, str, str], float]:
    """(example, variant, metric) -> value, for every number either kind of file holds."""
    out = {}
    for ex in data["examples"]:
        if any("profilers" in v for v in ex.get("variants", [])):  # a profiling summary
            for v in ex["variants"]:
                for prof, res in v.get("profilers", {}).items():
                    for key, value in res.get("metrics", {}).items():
                        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "steps":
                            out[(ex["id"], v["name"], f"{prof}.{key}")] = value
            continue
        res = ExampleResult.from_dict(ex)  # harness results: the figures, and the speedup the result type derives
        if res.speedup() is not None:
            out[(res.id, "-", "speedup")] = res.speedup()
        for v in res.variants:
            for key in RESULT_METRICS:
                if isinstance(getattr(v, key), (int, float)):
                    out[(res.id, v.name, key)] = getattr(v, key)
    return out


def label(data: dict, fallback: str) -> str:
    return (data["run"].get("device") or {}).get("name") or fallback


def compare_table(a: dict, b: dict, only: list[str] | None = None) -> list[list[str]]:
    fa, fb = flatten(a), flatten(b)
    rows = []
    for key in [k for k in fa if k in fb]:
        if only and not any(key[2].endswith(m) for m in only):
            continue
        va, vb = fa[key], fb[key]
        ratio = f"{vb / va:.3g}" if va else "-"
        rows.append([*key, f"{va:.4g}", f"{vb:.4g}", ratio])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--labels", nargs=2, metavar=("A", "B"), help="column names (default: the GPUs' names)")
    parser.add_argument("--metrics", help="comma list: keep metrics whose name ends with one of these")
    args = parser.parse_args(argv)
    try:
        a, b = load(args.a), load(args.b)
    except (OSError, ValueError) as exc:
        print(f"compare_runs: {exc}", file=sys.stderr)
        return 2
    labels = tuple(args.labels) if args.labels else (label(a, str(args.a)), label(b, str(args.b)))
    if labels[0] == labels[1]:
        labels = (f"A: {labels[0]}", f"B: {labels[1]}")
    rows = compare_table(a, b, args.metrics.split(",") if args.metrics else None)
    if not rows:
        print("compare_runs: no metric is present in both runs", file=sys.stderr)
        return 1
    print(f"A = {args.a} ({labels[0]}), B = {args.b} ({labels[1]})\n")
    print("| example | variant | metric | " + " | ".join(labels) + " | B/A |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
