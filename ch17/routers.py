"""Routing policies: which of N decode workers gets a new request.

- `round_robin`: worker i, i+1, ...: blind to load and to what each worker has cached.
- `least_tokens`: the worker with the fewest outstanding tokens (prompt tokens still to prefill + output tokens
  still to decode, over its queue and batch): balances work, blind to caches.
- `prefix_affinity`: consistent hashing of the request's shared prefix (its first `key_tokens` tokens) on a ring
  of virtual nodes, so every request with one system prompt goes to the worker that already holds its KV pages,
  and adding a worker moves only ~1/N of the prefixes. Pure hashing piles a popular prefix onto one worker, so the
  ring walk skips a worker whose load would exceed `bound` x the mean (consistent hashing with bounded loads,
  Mirrokni, Thorup and Zadimoghaddam 2018): affinity while it is cheap, balance when it is not.

A worker exposes `outstanding_tokens()`; a policy is a callable (request, workers) -> worker index.
"""
from __future__ import annotations

import bisect
import hashlib


class RoundRobin:
    name = "round_robin"

    def __init__(self, n_workers: int):
        self.next = 0

    def __call__(self, req, workers) -> int:
        i = self.next % len(workers)
        self.next += 1
        return i


class LeastTokens:
    name = "least_tokens"

    def __init__(self, n_workers: int):
        pass

    def __call__(self, req, workers) -> int:
        return min(range(len(workers)), key=lambda i: (workers[i].outstanding_tokens(), i))


def _h(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class PrefixAffinity:
    name = "prefix_affinity"

    def __init__(self, n_workers: int, key_tokens: int = 16, vnodes: int = 64, bound: float = 1.25):
        self.key_tokens, self.bound = key_tokens, bound
        ring = sorted((_h(f"worker-{w}#{v}".encode()), w) for w in range(n_workers) for v in range(vnodes))
        self.points = [p for p, _ in ring]
        self.owners = [w for _, w in ring]

    def home(self, req) -> int:
        """The ring position of the request's prefix key (index into self.points)."""
        key = ",".join(map(str, req.prompt[:self.key_tokens])).encode()
        return bisect.bisect(self.points, _h(key)) % len(self.points)

    def __call__(self, req, workers) -> int:
        own = len(req.prompt) + req.max_new_tokens
        loads = [w.outstanding_tokens() for w in workers]
        cap = self.bound * (sum(loads) + own) / len(workers)  # bound x the mean load once this one is placed
        start, seen = self.home(req), set()
        for k in range(len(self.points)):
            w = self.owners[(start + k) % len(self.points)]
            if w in seen:
                continue
            if loads[w] <= cap:
                return w
            seen.add(w)
            if len(seen) == len(workers):
                break
        return min(range(len(workers)), key=lambda i: (loads[i], i))


POLICIES = {p.name: p for p in (RoundRobin, LeastTokens, PrefixAffinity)}
