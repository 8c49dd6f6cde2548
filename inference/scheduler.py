"""The engine's step loop: continuous batching with chunked prefill over a paged KV cache.

Each `step()` is one forward pass over a packed batch: every running request contributes its next tokens (one
for a decode, a chunk of the prompt for a prefill) until the step's token budget is spent; waiting requests join
as soon as there is budget, a batch slot and KV pages, and a request leaves the moment it is done. Decodes go
first (they hold KV and produce tokens every step), prefill chunks fill what is left, so a long prompt never
stalls the running decodes for more than one budget's worth of tokens (chunked prefill, as in vLLM/Sarathi).

When the pool runs out of pages, the youngest request is preempted: its pages are freed and it is recomputed
later from its prompt and the tokens it already produced (recompute preemption, as vLLM's default).

`static=True` is the old way, kept for comparison: a batch is admitted only when the previous one has fully
finished, so short requests wait for the longest one in their batch.

Bound: a step costs about max(2 * n_params * n_tokens / peak FLOP/s, (weight bytes + live KV bytes) / HBM
bandwidth); decode steps are memory-bound, which is why batching more sequences per step raises tokens/s.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import torch
from torch.profiler import record_function

from inference.graphed_decode import GraphedDecode
from inference.paged_kv import PagedKVCache
from inference.prefix_cache import PrefixCache


@dataclass
class Request:
    rid: int
    prompt: list[int]
    max_new_tokens: int
    temperature: float = 0.0  # 0: greedy
    top_k: int = 0            # 0: the whole vocabulary
    seed: int = 0
    arrival: float = 0.0
    output: list[int] = field(default_factory=list)
    n_computed: int = 0       # tokens whose keys/values are in the cache
    prefix_hit: int = 0       # prompt tokens taken from the prefix cache (last admission)
    preemptions: int = 0
    first_token_time: float | None = None
    finish_time: float | None = None
    logits: list[torch.Tensor] | None = None  # kept only when the engine is asked to (tests)
    generator: torch.Generator | None = None

    @property
    def tokens(self) -> list[int]:
        return self.prompt + self.output

    @property
    def done(self) -> bool:
        return len(self.output) >= self.max_new_tokens


def sample(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None) -> int:
    """One token from one row of logits: greedy at temperature 0, else softmax(logits / T) over the top k."""
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))


class Engine:
    def __init__(self, model, cache: PagedKVCache, max_batch: int = 64, token_budget: int = 512,
                 prefix_cache: bool = False, static: bool = False, keep_logits: bool = False, clock=time.perf_counter,
                 cuda_graphs: bool = False):
        self.model, self.cache = model, cache
        self.max_batch, self.token_budget, self.static = max_batch, token_budget, static
        self.prefix = PrefixCache(cache) if prefix_cache else None
        self.keep_logits, self.clock = keep_logits, clock
        self.graphed = GraphedDecode(model, cache) if cuda_graphs else None  # decode-only steps from CUDA graphs
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []  # in admission order: the last is the first to be preempted
        self.steps = 0
        self.step_tokens: list[int] = []
        self.peak_running = 0
        self.kv_used: list[tuple[int, int]] = []  # per step: (tokens held, token slots in reserved pages)

    def add(self, req: Request) -> None:
        total = len(req.prompt) + req.max_new_tokens
        if not req.prompt or total > self.model.cfg.max_seq:
            raise ValueError(f"request {req.rid}: prompt + output = {total} tokens, max_seq is {self.model.cfg.max_seq}")
        if -(-total // self.cache.page_size) > self.cache.n_pages:
            raise ValueError(f"request {req.rid}: {total} tokens never fit in {self.cache.n_pages} pages")
        if req.temperature > 0 and req.generator is None:
            req.generator = torch.Generator(device=self.cache.device).manual_seed(req.seed)
        self.waiting.append(req)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def _preempt(self, victim: Request) -> None:
        self.cache.free(victim.rid)
        victim.n_computed = 0
        victim.preemptions += 1
        self.running.remove(victim)
        self.waiting.appendleft(victim)

    def _schedule(self) -> list[tuple[Request, int]]:
        budget, rows = self.token_budget, []
        for r in list(self.running):
            if r not in self.running or budget == 0:
                continue
            n = min(len(r.tokens) - r.n_computed, budget)
            while not self.cache.reserve(r.rid, r.n_computed + n):
                victim = self.running[-1]
                budget += sum(m for q, m in rows if q is victim)
                rows = [(q, m) for q, m in rows if q is not victim]
                self._preempt(victim)
                if victim is r:
                    break
            else:
                rows.append((r, n))
                budget -= n
        admit = not (self.static and self.running)
        while admit and self.waiting and len(self.running) < self.max_batch and (budget > 0 or self.static):
            r = self.waiting[0]
            shared = self.prefix.match(r.tokens) if self.prefix else []
            self.cache.attach(r.rid, shared)
            r.n_computed = r.prefix_hit = len(shared) * self.cache.page_size
            n = min(len(r.tokens) - r.n_computed, budget)
            if not self.cache.reserve(r.rid, r.n_computed + n):
                self.cache.free(r.rid)
                r.n_computed = 0
                break
            self.running.append(self.waiting.popleft())
            if n:
                rows.append((r, n))
                budget -= n
        return rows

    @torch.no_grad()
    def step(self) -> list[Request]:
        """One forward pass; returns the requests that finished in it."""
        with record_function("engine.schedule"):  # labels for torch.profiler's trace (microseconds when it is off)
            rows = self._schedule()
            if not rows:
                return []
            tokens, positions, last = [], [], []
            for r, n in rows:
                tokens += r.tokens[r.n_computed:r.n_computed + n]
                positions += range(r.n_computed, r.n_computed + n)
                last.append(len(tokens) - 1)
            step_rows = [(r.rid, r.n_computed, n) for r, n in rows]
            graphed = self.graphed is not None and len(tokens) == len(rows)  # decode-only: one token per row
            if not graphed:
                self.cache.begin_step(step_rows)
                inputs = torch.tensor(tokens + positions + last).to(self.cache.device)  # one host-to-device copy
                tokens_d, positions_d, last_d = inputs.split([len(tokens), len(positions), len(last)])
        with record_function("engine.forward"):
            if graphed:
                logits = self.graphed(step_rows, tokens)
            else:
                logits = self.model(tokens_d[None], cache=self.cache, positions=positions_d, logits_at=last_d)[0]
        with record_function("engine.sample"):
            greedy = logits.argmax(-1).tolist()  # the one device sync per step
        now = self.clock()
        finished = []
        for i, (r, n) in enumerate(rows):
            r.n_computed += n
            if r.n_computed < len(r.tokens):
                continue  # a prefill chunk that is not the prompt's last
            if self.prefix and r.n_computed == len(r.tokens) and not r.output:
                self.prefix.insert(r.prompt, self.cache.pages[r.rid])
            if self.keep_logits:
                r.logits = (r.logits or []) + [logits[i].float().cpu()]
            tok = greedy[i] if r.temperature <= 0 else sample(logits[i], r.temperature, r.top_k, r.generator)
            r.output.append(tok)
            if r.first_token_time is None:
                r.first_token_time = now
            if r.done:
                r.finish_time = now
                self.cache.free(r.rid)
                self.running.remove(r)
                finished.append(r)
        self.steps += 1
        self.step_tokens.append(len(tokens))
        self.peak_running = max(self.peak_running, len(self.running) + len(finished))
        alloc = self.cache.allocator
        self.kv_used.append((sum(r.n_computed for r in self.running),
                             (alloc.n_pages - alloc.n_free()) * self.cache.page_size))
        return finished

    def run(self, requests: list[Request]) -> list[Request]:
        """Offline: all requests at once, stepped until every one is done."""
        for r in requests:
            self.add(r)
        while self.has_work():
            self.step()
        return requests
