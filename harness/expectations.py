"""Recorded figures per GPU, and the regression check against them.

`--record` writes `chN/expectations/<gpu-slug>.json`: per example, the figures of the run and where
they came from. A later run on the same GPU and size flags any example whose speedup fell, or whose
fastest verified variant got slower, by more than REGRESSION_TOLERANCE.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.process import write_atomic

REGRESSION_TOLERANCE = 0.15   # 15%: above the run-to-run spread we see, below a real loss

_KEEP = ("name", "role", "verified", "median_ms", "iqr_ms", "samples", "gbps", "tflops", "items_per_s",
         "max_abs_err", "fraction_of_peak_bandwidth", "fraction_of_peak_flops")


def expectations_path(chapter_dir: Path, slug: str) -> Path:
    return chapter_dir / "expectations" / f"{slug}.json"


def load(path: Path) -> dict:
    """The recorded figures, or none; a file that is not an expectations file is an error naming it."""
    if not path.exists():
        return {"examples": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("examples"), dict) \
            or not all(isinstance(e, dict) for e in data["examples"].values()):
        raise ValueError(f"{path}: not an expectations file (no 'examples' table of entries)")
    return data


def _fastest(entry: dict) -> float | None:
    times = [v["median_ms"] for v in entry.get("variants", []) if v.get("verified") and v.get("median_ms")]
    return min(times) if times else None


def regressions(result: dict, expected: dict | None) -> list[str]:
    """Messages for each figure that is worse than recorded by more than the tolerance."""
    if not expected or expected.get("size") != result.get("size") or result.get("status") != "ok":
        return []
    if bool(expected.get("cold_l2")) != bool(result.get("cold_l2")):
        return []  # a cold-L2 run and a warm one measure different things
    out = []
    old, new = expected.get("speedup"), result.get("speedup")
    if old and new and new < old * (1 - REGRESSION_TOLERANCE):
        out.append(f"speedup {new:.2f}x vs recorded {old:.2f}x")
    old_ms, new_ms = _fastest(expected), _fastest(result)
    if old_ms and new_ms and new_ms > old_ms * (1 + REGRESSION_TOLERANCE):
        out.append(f"fastest variant {new_ms:.4g} ms vs recorded {old_ms:.4g} ms")
    return out


def record(path: Path, example_id: str, result: dict, run: dict) -> None:
    """Merge one example's figures into the file, keeping the other examples' entries."""
    data = load(path)
    data["gpu"] = run["device"]["name"]
    data["examples"][example_id] = {
        "size": result["size"],
        "cold_l2": bool(result.get("cold_l2")),
        "speedup": result.get("speedup"),
        "items_unit": result.get("items_unit"),
        "teaching_baseline": result.get("teaching_baseline", False),
        "targets": result.get("targets", []),
        "variants": [{k: v.get(k) for k in _KEEP if k in v} for v in result["variants"]],
        "provenance": {k: run[k] for k in ("started_at", "git_sha", "host", "device", "versions")},
    }
    data["examples"] = dict(sorted(data["examples"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1) + "\n")
