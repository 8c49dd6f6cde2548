"""Speedup from interleaved, parent-timed batches: one ratio per round, and the noise around their median.

Each round times one reference batch and one candidate batch of the same calls, back to back in a random
order, so a load spike on a shared machine hits both sides of a ratio alike. The speedup is the median
of the per-round ratios; its noise is a distribution-free 95% interval for that median (order statistics
of the sorted log-ratios), which is what a certificate re-check is compared against.
"""
from __future__ import annotations

import math


def quantile(sorted_xs: list[float], q: float) -> float:
    pos = (len(sorted_xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def median_interval(xs: list[float]) -> tuple[float, float, float]:
    """(median, low, high): a 95% interval for the median from the order statistics (binomial, n >= 1)."""
    s = sorted(xs)
    n = len(s)
    k = max(0, math.floor(n / 2 - 0.98 * math.sqrt(n)))
    return quantile(s, 0.5), s[k], s[n - 1 - k]


def paired_speedup(ref_batch_s: list[float], cand_batch_s: list[float], calls_per_batch: int | list[int]) -> dict:
    """The figures of a verdict's timing from the parent's batch times (seconds per batch); calls_per_batch
    is one count for every round or one per round (the judge shortens the batches of a slow candidate)."""
    if not ref_batch_s or len(ref_batch_s) != len(cand_batch_s):
        raise ValueError("need one reference and one candidate batch per round")
    ns = calls_per_batch if isinstance(calls_per_batch, list) else [calls_per_batch] * len(ref_batch_s)
    if len(ns) != len(ref_batch_s):
        raise ValueError("need one call count per round")
    logs = [math.log(r / c) for r, c in zip(ref_batch_s, cand_batch_s, strict=True)]
    mid, lo, hi = median_interval(logs)
    per_call = (sorted(x / n for x, n in zip(ref_batch_s, ns, strict=True)),
                sorted(x / n for x, n in zip(cand_batch_s, ns, strict=True)))
    return {"speedup": math.exp(mid), "speedup_ci": [math.exp(lo), math.exp(hi)],
            "noise": (math.exp(hi) - math.exp(lo)) / 2 / math.exp(mid),
            "baseline_ms": quantile(per_call[0], 0.5) * 1e3, "candidate_ms": quantile(per_call[1], 0.5) * 1e3,
            "ratios": [round(math.exp(x), 4) for x in logs], "rounds": len(logs)}


def intervals_overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]
