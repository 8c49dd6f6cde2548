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
Metrics: speedup (over the baseline, paired), speedup_vs_reference (over the fastest reference), or a figure
of the fastest verified optimized variant: median_ms, gbps, tflops, items_per_s, fraction_of_peak_bandwidth,
fraction_of_peak_flops. `variant = "name"` judges that variant instead. A claim that applies but cannot be
measured (a misspelt variant is refused when the file is read; a missing peaks file is not) counts as missed.
`missed_why = "..."` is shown beside a miss: what was measured about its cause (never a reason to pass it).
"""
from __future__ import annotations

import operator
import tomllib
from pathlib import Path

from harness.result import ExampleResult, TargetCheck, VariantResult

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
            if metric not in ("speedup", "speedup_vs_reference") and metric not in VARIANT_METRICS:
                raise TargetsError(f"{where} is not a known metric")
            if not isinstance(spec, dict):
                raise TargetsError(f"{where} must be a table with op and values")
            if spec.get("op", ">=") not in OPS:
                raise TargetsError(f"{where} op must be one of {', '.join(OPS)}")
            for key, value in spec.items():
                text_key = key in ("op", "source", "variant", "command", "missed_why") or key.startswith("source_")
                if not text_key and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise TargetsError(f"{where} {key} must be a number, got {value!r}")
    return data


def check_names(data: dict, path: Path, variants: dict[str, set[str] | None]) -> None:
    """Every example and variant a targets file names must exist: a misspelt key would never be judged.

    variants: example name -> its variant names (None where the example could not be loaded to tell).
    A table whose metrics name a `command` (`command = "python -m ch4.collectives"`) is that command's to judge.
    """
    for example, metrics in data.items():
        if all("command" in spec for spec in metrics.values()):
            continue   # judged by a command of its own (a multi-process sweep, say), not by a harness example
        if example not in variants:
            raise TargetsError(f"{path}: [{example}] names no example in {path.parent.name}; "
                               f"it has: {', '.join(sorted(variants)) or 'none'}")
        names = variants[example]
        for metric, spec in metrics.items():
            name = spec.get("variant")
            if name is not None and names is not None and name not in names:
                raise TargetsError(f"{path}: [{example}.{metric}] variant = {name!r} names no variant of {example}; "
                                   f"it has: {', '.join(sorted(names))}")


def _judged(result: ExampleResult, variant: str | None) -> VariantResult | None:
    """The variant a target judges: the one named, else the fastest verified optimized one (teaching ones aside)."""
    if variant is not None:
        return result.variant(variant)
    plain = [v for v in result.variants if v.role == "optimized" and v.timed and not v.teaching]
    timed = plain or [v for v in result.variants if v.role == "optimized" and v.timed]
    return min(timed, key=lambda v: v.median_ms) if timed else None


def _measured(result: ExampleResult, metric: str, variant: str | None) -> tuple[float | None, str]:
    """(figure, why there is none)."""
    if metric in ("speedup", "speedup_vs_reference"):
        over = "baseline" if metric == "speedup" else "reference"
        name = variant or _name(result)
        value = result.speedup(name, over=over) if name else None
        if value is None and over == "reference" and result.fastest("reference") is None:
            return None, "no timed reference variant"
        return value, "" if value is not None else "the variant it judges was not verified or not timed"
    row = _judged(result, variant)
    if row is None or not row.timed:
        return None, "the variant it judges was not verified or not timed"
    value = getattr(row, metric)
    if value is None and metric.startswith("fraction_of_peak"):
        return None, f"no ceiling for it on this machine ({result.peak_source or 'no peaks file'})"
    return value, "" if value is not None else f"the example reports no {metric}"


def _name(result: ExampleResult) -> str | None:
    row = _judged(result, None)
    return row.name if row else None


def evaluate(example_targets: dict, result: ExampleResult, arch: str) -> list[TargetCheck]:
    """One check per target: the claim for this architecture, what was measured, and met or not.

    A claim that applies here but could not be measured counts as missed (met False, with why); a claim on a
    variant skipped for want of its own requirement, or on a skipped example, does not apply (met None).
    """
    out = []
    for metric, spec in example_targets.items():
        # On the CPU only an explicit `cpu` value applies: GPU claims say nothing about a tiny CPU run.
        key = arch if arch in spec else ("default" if arch != "cpu" else None)
        value, op, variant = spec.get(key), spec.get("op", ">="), spec.get("variant")
        source = f"{key}: {spec.get(f'source_{key}', spec.get('source', ''))}".rstrip(": ")
        check = TargetCheck(metric=metric, op=op, value=value, measured=None, met=None, variant=variant,
                            source=source if value is not None else "no target for this machine")
        row = result.variant(variant) if variant else None
        if value is None:
            pass
        elif result.status == "skipped":
            check.source, check.value, check.why = "no target applies: example skipped", None, result.reason
        elif row is not None and row.status == "skipped":
            check.why = f"variant skipped: {row.reason}"
            check.value = None
        elif result.status in ("timeout", "interrupted") or (result.status == "failed" and not result.variants):
            check.met, check.why = False, f"example {result.status}"
        else:
            check.measured, check.why = _measured(result, metric, variant)
            check.met = False if check.measured is None else bool(OPS[op](check.measured, value))
            if check.met is False and not check.why and spec.get("missed_why"):
                check.why = spec["missed_why"]   # what the example's authors measured as the reason
        out.append(check)
    return out
