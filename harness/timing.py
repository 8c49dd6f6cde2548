"""Timing: warm up, then sample until the median is known well enough, or time runs out.

On CUDA each sample is bracketed by events, and the closing event is recorded only after a
device-wide synchronize, so work a variant puts on side streams is inside the measurement.
A sample may hold several calls (``reps``) so that very short calls are not dominated by that
synchronize; cold-L2 mode always uses one call per sample and flushes the L2 before it, so for calls
of a few microseconds its figures include the synchronize's few microseconds.
On the CPU the same loop runs with ``time.perf_counter``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from harness.device import synchronize


@dataclass(frozen=True)
class TimingConfig:
    warmup_s: float = 0.05        # at least this long of calls before measuring ...
    min_warmup_calls: int = 3     # ... and at least this many
    min_samples: int = 10
    min_time_s: float = 0.1       # measured time before the stop rule may stop
    max_time_s: float = 2.0       # give up on convergence after this long (the result says so)
    max_rel_error: float = 0.005  # stop when the median's standard error is under 0.5% of it
    min_sample_s: float = 1e-3    # calls shorter than this are grouped into one sample, so the host's
                                  # wake-up after the closing synchronize is at most ~2% of a sample
    cold_l2: bool = False


@dataclass(frozen=True)
class Stats:
    median_ms: float
    iqr_ms: float
    min_ms: float
    samples: int
    reps: int            # calls per sample
    converged: bool      # False when max_time_s ran out before the stop rule was met
    wall_ms: float       # host wall-clock median per call, for spotting work the events miss

    @classmethod
    def from_samples(cls, samples_s: list[float], walls_s: list[float], reps: int, converged: bool) -> Stats:
        """The figures from per-call samples in seconds (device time, and host wall time beside it)."""
        s, w = sorted(samples_s), sorted(walls_s)
        return cls(median_ms=quantile(s, 0.5) * 1e3, iqr_ms=(quantile(s, 0.75) - quantile(s, 0.25)) * 1e3,
                   min_ms=s[0] * 1e3, samples=len(s), reps=reps, converged=converged, wall_ms=quantile(w, 0.5) * 1e3)

    def to_dict(self) -> dict:
        return asdict(self)


def quantile(sorted_xs: list[float], q: float) -> float:
    pos = (len(sorted_xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def median_rel_error(xs: list[float]) -> float:
    """Standard error of the median over the median, with sigma estimated robustly from the IQR."""
    s = sorted(xs)
    med = quantile(s, 0.5)
    if len(s) < 2 or med <= 0:
        return math.inf
    sigma = (quantile(s, 0.75) - quantile(s, 0.25)) / 1.349
    return 1.2533 * sigma / math.sqrt(len(s)) / med


def should_stop(samples_s: list[float], elapsed_s: float, cfg: TimingConfig) -> tuple[bool, bool]:
    """(stop, converged): the stop rule on its own, so that it can be tested without a clock."""
    if elapsed_s >= cfg.max_time_s and len(samples_s) >= 3:
        return True, median_rel_error(samples_s) <= cfg.max_rel_error
    if len(samples_s) < cfg.min_samples or elapsed_s < cfg.min_time_s:
        return False, False
    converged = median_rel_error(samples_s) <= cfg.max_rel_error
    return converged, converged


class _L2Flusher:
    """Reads a buffer twice the size of the L2 so that the next call starts with a cold cache.

    A read, not a write: a written buffer would leave dirty lines whose write-back lands in the timed call.
    """

    def __init__(self, device: torch.device):
        l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 64 * 2**20
        self.buf = torch.ones(2 * l2 // 4, dtype=torch.int32, device=device)

    def __call__(self) -> None:
        self.buf.sum()


def measure(fn: Callable[[], object], device: torch.device, cfg: TimingConfig = TimingConfig()) -> Stats:
    is_cuda = device.type == "cuda"
    flush = _L2Flusher(device) if (is_cuda and cfg.cold_l2) else None

    # Warm-up: module load, autotuning, allocator growth and lazy init stay out of the figures.
    t0, calls = time.perf_counter(), 0
    while calls < cfg.min_warmup_calls or time.perf_counter() - t0 < cfg.warmup_s:
        fn()
        calls += 1
        synchronize(device)
    per_call_s = (time.perf_counter() - t0) / calls
    reps = 1 if flush else max(1, min(1000, math.ceil(cfg.min_sample_s / max(per_call_s, 1e-9))))

    samples, walls = [], []
    started = time.perf_counter()
    while True:
        if flush:
            flush()
        if is_cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            w0 = time.perf_counter()
            start.record()
            for _ in range(reps):
                fn()
            synchronize(device)
            end.record()
            end.synchronize()
            walls.append((time.perf_counter() - w0) / reps)
            samples.append(start.elapsed_time(end) / 1e3 / reps)
        else:
            w0 = time.perf_counter()
            for _ in range(reps):
                fn()
            walls.append((time.perf_counter() - w0) / reps)
            samples.append(walls[-1])
        stop, converged = should_stop(samples, time.perf_counter() - started, cfg)
        if stop:
            break

    return Stats.from_samples(samples, walls, reps, converged)
