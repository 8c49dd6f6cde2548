"""Recorded figures per GPU, the regression check against them, and the rule for recording.

`--record` writes `chN/expectations/<gpu-slug>.json`: per example, the recorded run (an ExampleResult, raw
samples dropped), its provenance, the best figure each variant has ever recorded, and a short history.
A later run on the same GPU, size and L2 mode is compared with the best figures, every variant (the
baseline too: a slower baseline would otherwise raise a speedup unseen), with a threshold that grows
with the spread both runs measured. A run is recorded only when it is clean (ok, every target met, no
regression, timing converged) unless `--force` says otherwise; so six runs each a little slower cannot
walk the figures down.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness.process import write_atomic
from harness.result import ExampleResult

MIN_TOLERANCE = 0.05      # never flag less than a 5% change ...
SPREAD_FACTOR = 3.0       # ... nor less than three times the relative spread (IQR / median) either run measured
MAX_TOLERANCE = 0.5
HISTORY = 10              # entries of history kept per example


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


def entry_result(entry: dict) -> ExampleResult:
    """The recorded run of an entry (entries written before the typed contract hold the result's fields inline)."""
    if "result" in entry:
        return ExampleResult.from_dict(entry["result"])
    return ExampleResult.from_dict({k: v for k, v in entry.items() if k not in ("provenance", "best", "history")})


def _best(entry: dict) -> dict:
    """{'variants': {name: best median ms}, 'spread': {name: its relative spread}, 'speedup': best}."""
    if "best" in entry:
        return entry["best"]
    old = entry_result(entry)
    return _figures(old)


def _spread(v) -> float:
    return (v.iqr_ms or 0.0) / v.median_ms if v.median_ms else 0.0


def _figures(res: ExampleResult) -> dict:
    timed = [v for v in res.variants if v.timed]
    return {"variants": {v.name: v.median_ms for v in timed}, "spread": {v.name: _spread(v) for v in timed},
            "speedup": res.speedup()}


def _tolerance(*spreads: float) -> float:
    return min(MAX_TOLERANCE, max(MIN_TOLERANCE, SPREAD_FACTOR * max(spreads, default=0.0)))


def regressions(result: ExampleResult, entry: dict | None) -> list[str]:
    """One message per variant (and for the headline speedup) worse than its best recorded figure."""
    if not entry or result.status != "ok":
        return []
    old = entry_result(entry)
    if old.size != result.size or bool(old.cold_l2_applied or old.cold_l2) != bool(result.cold_l2_applied):
        return []  # a different size, or a cold-L2 run against a warm one, measures something else
    best = _best(entry)
    out = []
    for v in result.variants:
        was = best["variants"].get(v.name)
        if not (v.timed and was):
            continue
        tol = _tolerance(_spread(v), best["spread"].get(v.name, 0.0))
        if v.median_ms > was * (1 + tol):
            out.append(f"{v.name} {v.median_ms:.4g} ms vs best recorded {was:.4g} ms "
                       f"(+{v.median_ms / was - 1:.0%}, threshold {tol:.0%})")
    new, was = result.speedup(), best.get("speedup")
    if new and was:
        fastest = result.fastest()
        spread = ((fastest.paired_speedup_p75 or new) - (fastest.paired_speedup_p25 or new)) / new if fastest else 0.0
        tol = _tolerance(spread)
        if new < was * (1 - tol):
            out.append(f"speedup {new:.3g}x vs best recorded {was:.3g}x (threshold {tol:.0%})")
    return out


def refusal(result: ExampleResult) -> str | None:
    """Why this run may not be recorded without --force, or None. A missed target is no reason: the miss is what was
    measured, and the chapter's table shows it as missed."""
    if result.status != "ok":
        return f"status {result.status}"
    if result.regressions:
        return "regression: " + "; ".join(result.regressions)
    noisy = [v.name for v in result.variants if v.timed and v.converged is False]
    if noisy:
        return f"timing noisy: {', '.join(noisy)}"
    return None


def record(path: Path, result: ExampleResult, run: dict, force: bool = False) -> str | None:
    """Merge one example's run into the file; returns why it was refused, or None when recorded.

    `force` records a run that regressed or was noisy (a new baseline, say); a run that failed, timed out or was
    skipped is never recorded.
    """
    why = refusal(result)
    if result.status != "ok" or (why and not force):   # --force records a regression or noise, never a failure
        return why
    data = load(path)
    data["gpu"] = run["device"]["name"]
    data["schema"] = 2
    old = data["examples"].get(result.id)
    kept = dataclasses.replace(result, variants=[dataclasses.replace(v, samples_ms=[]) for v in result.variants])
    figures = _figures(result)
    best = figures
    same_kind = old is not None and not force and entry_result(old).size == result.size
    if same_kind:   # the best figure each variant has reached; forced runs start afresh
        prev = _best(old)
        speedups = [x for x in (figures["speedup"], prev.get("speedup")) if x]
        best = {"variants": {n: min(ms, prev["variants"].get(n, ms)) for n, ms in figures["variants"].items()},
                "spread": figures["spread"], "speedup": max(speedups) if speedups else None}
    line = {"started_at": run["started_at"], "git_sha": run["git_sha"], "speedup": figures["speedup"],
            "variants": figures["variants"], "forced": bool(why)}
    history = ((old or {}).get("history", []) + [line])[-HISTORY:]
    data["examples"][result.id] = {
        "result": kept.to_dict(),
        "provenance": {k: run[k] for k in ("started_at", "git_sha", "host", "device", "versions")},
        "best": best,
        "history": history,
    }
    data["examples"] = dict(sorted(data["examples"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1) + "\n")
    return None
