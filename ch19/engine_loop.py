"""The serving loop of `inference.loadgen.serve` with two hooks around each step, for the controllers of this
chapter: `before(engine)` sets the knobs (token budget, batch size, precision), `after(engine, seconds, finished)`
observes what the step cost. The engine itself is unchanged: its knobs are plain attributes read every step.

`closed_loop` keeps a fixed number of requests in flight (a new one joins when one finishes): a stationary load,
which is what an online learner comparing knob settings over time windows needs.

Bound: the hooks are Python between steps (microseconds); a step is a forward pass (see inference/scheduler.py).
"""
from __future__ import annotations

import time

from inference.loadgen import serve
from inference.scheduler import Engine, Request


def _sync(engine: Engine) -> None:
    if engine.cache.device.type == "cuda":
        import torch
        torch.cuda.synchronize(engine.cache.device)


def timed_step(engine: Engine, before=None, after=None) -> list[Request]:
    if before:
        before(engine)
    t0 = time.perf_counter()
    finished = engine.step()  # the step ends with a host read of the sampled tokens: it is synchronous
    seconds = time.perf_counter() - t0
    if after:
        after(engine, seconds, finished)
    return finished


def serve_with(engine: Engine, requests: list[Request], before=None, after=None, deadline_s: float = float("inf")):
    """Online: request i joins at its arrival time; returns the makespan (seconds). `serve`, each step timed."""
    _sync(engine)
    return serve(engine, requests, deadline_s, step=lambda: timed_step(engine, before, after))


def closed_loop(engine: Engine, next_request, concurrency: int, steps: int, before=None, after=None) -> None:
    """`concurrency` requests always in the system (`next_request(rid)` makes each); `steps` engine steps."""
    rid = 0
    t0 = time.perf_counter()
    engine.clock = lambda: time.perf_counter() - t0
    for _ in range(concurrency):
        engine.add(next_request(rid))
        rid += 1
    for _ in range(steps):
        for _ in timed_step(engine, before, after):
            r = next_request(rid)
            r.arrival = engine.clock()
            engine.add(r)
            rid += 1
