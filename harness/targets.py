"""Per-chapter claims, judged against what a run measured.

`chN/targets.toml` holds one table per example and metric:

    [batched_matmul.speedup]
    op = ">="
    B200 = 31.0          # the book's figure
    H200 = 38.0          # set from our recorded run (tools/propose_targets.py) ...
    source_H200 = "0.85 x 45.8 measured on NVIDIA H200, git b5d1b53"   # ... and where it came from
    default = 2.0
    source = "book ch1: one batched GEMM vs 40 launches"

The value for the GPU's architecture applies, else `default`, else the target does not apply (met: null).
On the CPU only a `cpu` value applies.
Metrics: speedup, or a best-verified-variant figure: median_ms, gbps, tflops, items_per_s,
fraction_of_peak_bandwidth, fraction_of_peak_flops. `variant = "name"` picks a variant instead.
"""
from __future__ import annotations

import operator
import tomllib
from pathlib import Path

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
VARIANT_METRICS = ("median_ms", "gbps", "tflops", "items_per_s", "fraction_of_peak_bandwidth", "fraction_of_peak_flops")


class TargetsError(ValueError):
    pass


def load_targets(chapter_dir: Path) -> dict:
    path = chapter_dir / "targets.toml"
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"{path}: {exc}") from exc
    for example, metrics in data.items():
        if not isinstance(metrics, dict):
            raise TargetsError(f"{path}: {example!r} must be a table of metrics, like [{example}.speedup]")
        for metric, spec in metrics.items():
            where = f"{path}: [{example}.{metric}]"
            if metric != "speedup" and metric not in VARIANT_METRICS:
                raise TargetsError(f"{where} is not a known metric")
            if not isinstance(spec, dict):
                raise TargetsError(f"{where} must be a table with op and values")
            if spec.get("op", ">=") not in OPS:
                raise TargetsError(f"{where} op must be one of {', '.join(OPS)}")
            for key, value in spec.items():
                text_key = key in ("op", "source", "variant") or key.startswith("source_")
                if not text_key and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise TargetsError(f"{where} {key} must be a number, got {value!r}")
    return data


def _measured(result: dict, metric: str, variant: str | None) -> float | None:
    if metric == "speedup":  # of the fastest verified variant, or of the one named, over the baseline
        if variant is None:
            return result.get("speedup")
        rows = result.get("variants", [])
        base = rows[0].get("median_ms") if rows else None
        mine = [v["median_ms"] for v in rows if v["name"] == variant and v.get("verified") and v.get("median_ms")]
        return base / mine[0] if base and mine else None
    rows = [v for v in result.get("variants", []) if v.get("verified") and v.get(metric) is not None]
    if variant is not None:
        rows = [v for v in rows if v["name"] == variant]
    else:
        rows = [v for v in rows if v["role"] == "optimized"]
    if not rows:
        return None
    pick = min if metric == "median_ms" else max
    return pick(v[metric] for v in rows)


def evaluate(example_targets: dict, result: dict, arch: str) -> list[dict]:
    """One entry per target: what was claimed for this architecture, what was measured, and met or not."""
    out = []
    for metric, spec in example_targets.items():
        # On the CPU only an explicit `cpu` value applies: GPU claims say nothing about a tiny CPU run.
        key = arch if arch in spec else ("default" if arch != "cpu" else None)
        value = spec.get(key)
        op = spec.get("op", ">=")
        measured = _measured(result, metric, spec.get("variant"))
        met = None if value is None or measured is None else bool(OPS[op](measured, value))
        out.append({"metric": metric, "op": op, "value": value, "measured": measured, "met": met,
                    "variant": spec.get("variant"),
                    "source": f"{key}: {spec.get(f'source_{key}', spec.get('source', ''))}".rstrip(": ")
                    if value is not None else "no target for this GPU"})
    return out
