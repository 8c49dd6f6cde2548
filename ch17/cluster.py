"""N decode workers behind one router, two ways: real engines and simulated ones, driven by one event loop.

- `EngineWorker`: a real `inference.scheduler.Engine` (its own paged KV cache and prefix cache; the weights are
  shared). N of them live in one process and take turns on the one device, each with its own clock that advances by
  the measured time of its own steps, so the cluster behaves as N devices running side by side (each step timed as
  if alone on its GPU), while every token is really computed.
- `SimWorker`: the same scheduling rules (decodes first, chunked prefill under a token budget, a batch limit, KV
  pages, a prefix cache of full pages with LRU eviction) with no model: a step lasts what the fitted step model
  (`ch17.step_model`) says for its tokens and context. Cheap enough for 64 workers and thousands of requests.
  Unlike the engine it reserves a request's pages for prompt + output at admission (no preemption).

`run_cluster` is a discrete-event loop: the next event is either the next arrival (routed, optionally refused
by an admission policy, queued at its worker) or the step of the busy worker whose clock is earliest. A router
sees each worker as of its last finished step. Timestamps on the requests are virtual seconds since the start,
so `inference.metrics.summarize` reads them as it reads a real run's.
"""
from __future__ import annotations

import heapq
import math
import time
from collections import OrderedDict, deque

import torch

from inference.scheduler import Engine, Request


def _outstanding(reqs) -> int:
    """Prompt tokens still to prefill + output tokens still to decode."""
    return sum(len(r.prompt) - r.n_computed + r.max_new_tokens for r in reqs)  # (r.tokens would copy the lists)


class EngineWorker:
    def __init__(self, engine: Engine):
        self.engine, self.clock, self._wall0 = engine, 0.0, None
        self.steps: list[tuple[int, int, int, float]] = []
        self.sync = torch.cuda.synchronize if engine.cache.device.type == "cuda" else (lambda: None)
        engine.clock = self._now  # stamps first-token / finish times in this worker's own time

    def _now(self) -> float:
        return self.clock + (time.perf_counter() - self._wall0 if self._wall0 is not None else 0.0)

    def has_work(self) -> bool:
        return self.engine.has_work()

    def add(self, req: Request) -> None:
        self.engine.add(req)

    def step(self) -> list[Request]:
        self.sync()
        self._wall0 = time.perf_counter()
        finished = self.engine.step()  # ends with a device sync (the sampled tokens go to the host)
        dt = time.perf_counter() - self._wall0
        self.clock += dt
        self._wall0 = None
        if finished or self.engine.running:  # (tokens, context read, rows, seconds): to check the step model
            kv = sum(r.n_computed for r in self.engine.running) + sum(r.n_computed for r in finished)
            self.steps.append((self.engine.step_tokens[-1], kv, len(self.engine.running) + len(finished), dt))
        return finished

    def queue(self):
        return list(self.engine.waiting) + self.engine.running

    def batch(self):
        return self.engine.running

    def outstanding_tokens(self) -> int:
        return _outstanding(self.queue())

    def pending_prefill_tokens(self) -> int:
        return sum(max(0, len(r.prompt) - r.n_computed) for r in self.queue())

    def n_decoding(self) -> int:
        return sum(r.n_computed >= len(r.prompt) for r in self.engine.running)

    def kv_tokens(self) -> int:
        return sum(r.n_computed for r in self.engine.running)

    def prefix_stats(self) -> tuple[int, int]:
        p = self.engine.prefix
        return (p.hit_tokens, p.lookup_tokens) if p else (0, 0)


class SimWorker:
    def __init__(self, step_model, *, kv_tokens: int, page_size: int, max_batch: int, token_budget: int,
                 prefix_cache: bool = True):
        self.sm, self.ps, self.n_pages = step_model, page_size, kv_tokens // page_size
        self.max_batch, self.budget, self.prefix = max_batch, token_budget, prefix_cache
        self.clock = 0.0
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.cached: OrderedDict[int, int] = OrderedDict()  # page-chain key -> sequences using it; order = LRU
        self.keys: dict[int, list[int]] = {}     # rid -> keys of its prompt's full pages (prefix chain hashes)
        self.held: dict[int, list[int]] = {}     # rid -> cached keys it holds a reference on
        self.private: dict[int, int] = {}        # rid -> pages only it uses
        self.hit_tokens = self.lookup_tokens = 0
        self.private_pages = 0                   # sum of self.private (kept, not recounted)
        self.outstanding = 0                     # what _outstanding(self.queue()) would count (kept)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, req: Request) -> None:
        if -(-(len(req.prompt) + req.max_new_tokens) // self.ps) > self.n_pages:
            raise ValueError(f"request {req.rid}: {len(req.prompt) + req.max_new_tokens} tokens never fit in "
                             f"{self.n_pages} pages")
        keys, h = [], 0
        for i in range(len(req.prompt) // self.ps):  # a key names a page and everything before it
            h = hash((h, tuple(req.prompt[i * self.ps:(i + 1) * self.ps])))
            keys.append(h)
        self.keys[req.rid] = keys
        self.waiting.append(req)
        self.outstanding += len(req.prompt) - req.n_computed + req.max_new_tokens

    def _free(self) -> int:
        return self.n_pages - self.private_pages - len(self.cached)

    def _evict(self, need: int) -> None:
        victims, free = [], self._free()
        for key, refs in self.cached.items():  # least recently used first
            if free + len(victims) >= need:
                break
            if refs == 0:
                victims.append(key)
        for key in victims:
            del self.cached[key]

    def _admit(self, r: Request) -> bool:
        matched = []
        if self.prefix:
            for key in self.keys[r.rid][:(len(r.prompt) - 1) // self.ps]:  # leave a token to compute
                if key not in self.cached:
                    break
                matched.append(key)
        need = -(-(len(r.prompt) + r.max_new_tokens) // self.ps) - len(matched)
        for key in matched:  # hold them before evicting anything
            self.cached[key] += 1
        if self._free() < need:
            self._evict(need)
        if self._free() < need:
            for key in matched:
                self.cached[key] -= 1
            return False
        for key in reversed(matched):  # the shallowest page ends most recent: leaves are evicted first
            self.cached.move_to_end(key)
        self.held[r.rid], self.private[r.rid] = matched, need
        self.private_pages += need
        r.n_computed = r.prefix_hit = len(matched) * self.ps
        self.outstanding -= r.prefix_hit
        self.hit_tokens += r.prefix_hit
        self.lookup_tokens += len(r.prompt)
        return True

    def _insert(self, r: Request) -> None:
        held = self.held[r.rid]
        for key in self.keys[r.rid][len(held):]:
            if key in self.cached:
                break  # another request cached it first: this one keeps its own copy
            self.cached[key] = 1
            held.append(key)
            self.private[r.rid] -= 1  # the page now belongs to the cache (and this request uses it)
            self.private_pages -= 1

    def _release(self, r: Request) -> None:
        for key in self.held.pop(r.rid):
            self.cached[key] -= 1
        self.private_pages -= self.private.pop(r.rid)
        self.outstanding -= len(r.prompt) - r.n_computed + r.max_new_tokens
        del self.keys[r.rid]

    def step(self) -> list[Request]:
        budget, rows = self.budget, []
        for r in self.running:
            n = min(len(r.prompt) + len(r.output) - r.n_computed, budget)
            if n:
                rows.append((r, n))
                budget -= n
        while self.waiting and len(self.running) < self.max_batch and budget > 0 and self._admit(self.waiting[0]):
            r = self.waiting.popleft()
            self.running.append(r)
            n = min(len(r.prompt) + len(r.output) - r.n_computed, budget)
            rows.append((r, n))
            budget -= n
        if not rows:
            return []
        self.clock += self.sm.step_time(sum(n for _, n in rows), sum(r.n_computed + n for r, n in rows), len(rows))
        finished = []
        for r, n in rows:
            r.n_computed += n
            self.outstanding -= n
            if r.n_computed < len(r.prompt) + len(r.output):
                continue
            if self.prefix and not r.output:
                self._insert(r)
            r.output.append(0)
            if r.first_token_time is None:
                r.first_token_time = self.clock
            if r.done:
                r.finish_time = self.clock
                self._release(r)
                self.running.remove(r)
                finished.append(r)
        return finished

    def queue(self):
        return list(self.waiting) + self.running

    def batch(self):
        return self.running

    def outstanding_tokens(self) -> int:
        return self.outstanding

    def pending_prefill_tokens(self) -> int:
        return sum(max(0, len(r.prompt) - r.n_computed) for r in self.queue())

    def n_decoding(self) -> int:
        return sum(r.n_computed >= len(r.prompt) for r in self.running)

    def kv_tokens(self) -> int:
        return sum(r.n_computed for r in self.running)

    def prefix_stats(self) -> tuple[int, int]:
        return self.hit_tokens, self.lookup_tokens


def run_cluster(workers: list, router, requests: list[Request], admission=None,
                deadline_s: float = math.inf, wall_limit_s: float = math.inf) -> dict:
    """Serve `requests` (arrival times set) on `workers`. Returns the makespan, the refused requests' ids and the
    number each worker took. Stops at deadline_s of virtual time or wall_limit_s of real time (unfinished
    requests keep finish_time None)."""
    pending = sorted(requests, key=lambda r: r.arrival)
    rejected, taken, i = [], [0] * len(workers), 0
    busy: list[tuple[float, int]] = []  # a heap of (clock, worker) over the workers with work
    wall0 = time.perf_counter()
    while time.perf_counter() - wall0 < wall_limit_s:
        t_step = busy[0][0] if busy else math.inf
        if i < len(pending) and pending[i].arrival <= t_step:
            r = pending[i]
            i += 1
            k = router(r, workers)
            if admission is not None and not admission(r, workers[k]):
                rejected.append(r.rid)
                continue
            w = workers[k]
            if not w.has_work():  # an idle worker waits for its next request, then joins the heap
                w.clock = max(w.clock, r.arrival)
                heapq.heappush(busy, (w.clock, k))
            w.add(r)
            taken[k] += 1
            continue
        if not busy or t_step > deadline_s:
            break
        _, k = heapq.heappop(busy)
        workers[k].step()
        if workers[k].has_work():
            heapq.heappush(busy, (workers[k].clock, k))
    ends = [r.finish_time for r in requests if r.finish_time is not None]
    hits = [w.prefix_stats() for w in workers]
    return {"makespan_s": max(ends, default=0.0), "rejected": rejected, "taken": taken,
            "prefix_hit_rate": sum(h for h, _ in hits) / max(1, sum(n for _, n in hits))}
