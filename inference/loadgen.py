"""A seeded load generator: requests arriving as a Poisson process with log-normal prompt and output lengths
(the shape of chat traces such as ShareGPT: many short, a long tail), optionally sharing system prompts.

    reqs = poisson_requests(Workload(rate=4.0, n_requests=100, prompt_mean=256, output_mean=128), vocab=128256)
    done = serve(engine, reqs)     # online: each request is added when its arrival time comes

The same seed gives the same requests (arrival times, lengths, token ids), so two engines compared at one rate
see the same load.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass

from inference.scheduler import Engine, Request


@dataclass(frozen=True)
class Workload:
    rate: float               # requests per second (Poisson); inf: all arrive at t=0
    n_requests: int
    prompt_mean: int = 128    # mean of the unique part of the prompt
    output_mean: int = 64
    sigma: float = 0.6        # log-normal shape: larger, heavier tail
    max_prompt: int = 1024
    max_output: int = 512
    prefix_len: int = 0       # shared system prompt length (0: none)
    n_prefixes: int = 1       # how many different system prompts the requests draw from
    temperature: float = 0.0
    top_k: int = 0
    seed: int = 0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["rate"] = self.rate if math.isfinite(self.rate) else "inf"  # JSON has no infinity
        return d


def _lognormal(rng: random.Random, mean: float, sigma: float, lo: int, hi: int) -> int:
    mu = math.log(mean) - sigma * sigma / 2  # so that the mean (before clipping) is `mean`
    return max(lo, min(hi, round(rng.lognormvariate(mu, sigma))))


def poisson_requests(w: Workload, vocab: int) -> list[Request]:
    rng = random.Random(w.seed)
    prefixes = [[rng.randrange(vocab) for _ in range(w.prefix_len)] for _ in range(w.n_prefixes)]
    t, reqs = 0.0, []
    for i in range(w.n_requests):
        if math.isfinite(w.rate):
            t += rng.expovariate(w.rate)
        n_prompt = _lognormal(rng, w.prompt_mean, w.sigma, 1, w.max_prompt)
        n_out = _lognormal(rng, w.output_mean, w.sigma, 1, w.max_output)
        prefix = prefixes[rng.randrange(w.n_prefixes)] if w.prefix_len else []
        prompt = prefix + [rng.randrange(vocab) for _ in range(n_prompt)]
        reqs.append(Request(i, prompt, n_out, w.temperature, w.top_k, seed=w.seed * 100003 + i, arrival=t))
    return reqs


def serve(engine: Engine, requests: list[Request], deadline_s: float = float("inf"), step=None) -> float:
    """Run the engine online: request i is added at its arrival time (seconds after the start); returns the
    makespan. Timestamps on the requests are seconds since the start. Stops at deadline_s (unfinished requests
    keep finish_time None). `step`: what runs one engine step (default `engine.step`; a controller wraps it)."""
    step = step or engine.step
    pending = sorted(requests, key=lambda r: r.arrival)
    t0 = time.perf_counter()
    engine.clock = lambda: time.perf_counter() - t0
    i = 0
    while i < len(pending) or engine.has_work():
        now = engine.clock()
        if now > deadline_s:
            break
        while i < len(pending) and pending[i].arrival <= now:
            engine.add(pending[i])
            i += 1
        if engine.has_work():
            step()
        elif i < len(pending):
            time.sleep(max(0.0, min(pending[i].arrival - now, 0.05)))
    return engine.clock()
