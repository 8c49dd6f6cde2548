"""Timing: warm up, then sample until the median is known well enough, or time runs out.

On CUDA each sample is bracketed by events, and the closing event is recorded only after a
device-wide synchronize, so work a variant puts on side streams is inside the measurement.
A sample may hold several calls (``reps``) so that very short calls are not dominated by that
synchronize; cold-L2 mode always uses one call per sample and flushes the L2 before it, so for calls
of a few microseconds its figures include the synchronize's few microseconds.
On the CPU the same loop runs with ``time.perf_counter``.

`measure_interleaved` times several variants in alternating rounds (A B C, B C A, ...), so slow drifts of the
machine (the GPU lowering its clock under sustained load, a neighbour on a shared CPU) fall on every variant
alike, and a speedup can be taken per round (paired ratios) and reported with its spread.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
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
    p25_ms: float = 0.0
    p75_ms: float = 0.0
    samples_ms: list[float] = field(default_factory=list)   # per call, in the order taken

    @classmethod
    def from_samples(cls, samples_s: list[float], walls_s: list[float], reps: int, converged: bool) -> Stats:
        """The figures from per-call samples in seconds (device time, and host wall time beside it)."""
        s, w = sorted(samples_s), sorted(walls_s)
        p25, p75 = quantile(s, 0.25) * 1e3, quantile(s, 0.75) * 1e3
        return cls(median_ms=quantile(s, 0.5) * 1e3, iqr_ms=p75 - p25, min_ms=s[0] * 1e3, samples=len(s), reps=reps,
                   converged=converged, wall_ms=quantile(w, 0.5) * 1e3, p25_ms=p25, p75_ms=p75,
                   samples_ms=[x * 1e3 for x in samples_s])

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


def _warm_and_calibrate(fn: Callable[[int], object], device: torch.device, cfg: TimingConfig, single: bool,
                        max_reps: int = 1000) -> int:
    """Warm up, then find how many calls make a sample of at least `min_sample_s`, timing bursts with one sync each.

    Calls in a burst are not synchronized one by one: a per-call sync would add its own cost to the estimate.
    """
    t0, calls = time.perf_counter(), 0
    while calls < cfg.min_warmup_calls or time.perf_counter() - t0 < cfg.warmup_s:
        fn(calls % max_reps)
        calls += 1
        synchronize(device)
    if single:
        return 1
    n = 1
    while True:
        b0 = time.perf_counter()
        for i in range(n):
            fn(i)
        synchronize(device)
        burst = time.perf_counter() - b0
        if burst >= cfg.min_sample_s or n >= max_reps:
            return max(1, min(max_reps, math.ceil(n * cfg.min_sample_s / max(burst, 1e-9))))
        n = min(max_reps, n * 4 if burst < cfg.min_sample_s / 8 else n * 2)


def _sample(fn: Callable[[int], object], reps: int, device: torch.device) -> tuple[float, float, object]:
    """One sample: (device seconds per call, wall seconds per call, what the last call returned)."""
    out = None
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        w0 = time.perf_counter()
        start.record()
        for i in range(reps):
            out = fn(i)
        synchronize(device)
        end.record()
        end.synchronize()
        wall = (time.perf_counter() - w0) / reps
        return start.elapsed_time(end) / 1e3 / reps, wall, out
    w0 = time.perf_counter()
    for i in range(reps):
        out = fn(i)
    wall = (time.perf_counter() - w0) / reps
    return wall, wall, out


@dataclass
class Interleaved:
    stats: dict[str, Stats]
    rounds: dict[str, list[float]]      # per variant, one sample (seconds per call) per round, rounds aligned

    def paired_ratios(self, base: str, other: str) -> list[float]:
        """base / other per round: the speedup of `other`, one figure per round."""
        return [b / o for b, o in zip(self.rounds[base], self.rounds[other], strict=True) if o > 0]


def measure_interleaved(fns: dict[str, Callable[[int], object]], device: torch.device, cfg: TimingConfig = TimingConfig(),
                        before_sample: Callable[[str, int], None] | None = None,
                        after_sample: Callable[[str, object, int], None] | None = None,
                        sample_context: Callable[[str], contextlib.AbstractContextManager] | None = None,
                        max_reps: int = 1000) -> Interleaved:
    """Time every function in alternating rounds; each gets `max_time_s` of measured time at most.

    fns: name -> fn(i), i the index of the call within its sample (to pick that call's input set).
    before_sample(name, reps) runs untimed before each sample and before warm-up (reps 0: fresh inputs),
    after_sample(name, last output, reps) after it (checking what the timed calls returned). Each round takes one
    sample of every function, starting with a different one each round, so a drift in the machine's speed lands
    on all of them alike.
    """
    is_cuda = device.type == "cuda"
    flush = _L2Flusher(device) if (is_cuda and cfg.cold_l2) else None
    names = list(fns)
    reps = {}
    for name in names:
        if before_sample:
            before_sample(name, 0)
        reps[name] = min(max_reps, _warm_and_calibrate(fns[name], device, cfg, flush is not None, max_reps))
    samples = {n: [] for n in names}
    walls = {n: [] for n in names}
    spent = {n: 0.0 for n in names}
    done: dict[str, bool] = {}
    rnd, wall0 = 0, time.perf_counter()
    wall_cap = 3 * cfg.max_time_s * len(names)   # untimed work (fresh inputs, checks) may not stretch a run for ever
    while True:
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            if before_sample:
                before_sample(name, reps[name])
            if flush:
                flush()
            with sample_context(name) if sample_context else contextlib.nullcontext():
                dev_s, wall_s, out = _sample(fns[name], reps[name], device)
            samples[name].append(dev_s)
            walls[name].append(wall_s)
            spent[name] += wall_s * reps[name]
            if after_sample:
                after_sample(name, out, reps[name])
            del out
        rnd += 1
        over = time.perf_counter() - wall0 > wall_cap and rnd >= 3
        verdicts = {n: should_stop(samples[n], cfg.max_time_s if over else spent[n], cfg) for n in names}
        if all(stop for stop, _ in verdicts.values()):
            done = {n: conv for n, (_, conv) in verdicts.items()}
            break
    stats = {n: Stats.from_samples(samples[n], walls[n], reps[n], done[n]) for n in names}
    return Interleaved(stats, samples)


def measure(fn: Callable[[], object], device: torch.device, cfg: TimingConfig = TimingConfig()) -> Stats:
    """One function on its own (the peaks benchmark; Chapter 20's child)."""
    return measure_interleaved({"fn": lambda i: fn()}, device, cfg).stats["fn"]
