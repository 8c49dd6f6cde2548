"""Generation three ways, which must agree: recomputing the whole sequence each step (no cache), a contiguous KV
cache (one sequence), and the paged engine (many sequences of different lengths in one batch).

    out = generate_paged(model, prompts, max_new_tokens=16)              # greedy
    out = generate_paged(model, prompts, 16, temperature=0.8, top_k=50, seed=1)

The recomputation is the definition; the caches are optimizations of it: with a cache a decode step computes one
token's projections instead of the whole sequence's (O(n) instead of O(n^2) work over a generation).
"""
from __future__ import annotations

import torch

from inference.paged_kv import PagedKVCache
from inference.scheduler import Engine, Request, sample


def _generator(model, seed):
    return torch.Generator(device=model.output.weight.device).manual_seed(seed)


@torch.no_grad()
def generate_recompute(model, prompt: list[int], max_new_tokens: int, temperature=0.0, top_k=0, seed=0):
    """The full forward pass over prompt + output so far, for every new token; returns (tokens, logits)."""
    dev, gen = model.output.weight.device, _generator(model, seed)
    seq, all_logits = list(prompt), []
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([seq], device=dev))[0, -1]
        all_logits.append(logits.float().cpu())
        seq.append(sample(logits, temperature, top_k, gen))
    return seq[len(prompt):], all_logits


@torch.no_grad()
def generate_contiguous(model, prompt: list[int], max_new_tokens: int, temperature=0.0, top_k=0, seed=0):
    """Prefill once into a contiguous cache, then one token per step; returns (tokens, logits)."""
    dev, gen = model.output.weight.device, _generator(model, seed)
    cache = model.new_cache(batch=1, max_seq=len(prompt) + max_new_tokens)
    logits = model(torch.tensor([prompt], device=dev), cache=cache, start_pos=0)[0, -1]
    out, all_logits = [], []
    for _ in range(max_new_tokens):
        all_logits.append(logits.float().cpu())
        out.append(sample(logits, temperature, top_k, gen))
        pos = len(prompt) + len(out) - 1
        logits = model(torch.tensor([[out[-1]]], device=dev), cache=cache, start_pos=pos)[0, -1]
    return out, all_logits


def new_paged_cache(model, n_pages: int, page_size: int = 16) -> PagedKVCache:
    p = model.output.weight
    return PagedKVCache(model.cfg, n_pages, page_size, p.dtype, p.device)


def generate_paged(model, prompts: list[list[int]], max_new_tokens: int, temperature=0.0, top_k=0, seed=0,
                   page_size=16, n_pages=None, token_budget=512, max_batch=64, prefix_cache=False, keep_logits=False,
                   cuda_graphs=False):
    """All prompts through the engine at once; request i samples with seed + i. Returns the finished requests."""
    if n_pages is None:  # enough for everyone at once
        n_pages = sum(-(-(len(p) + max_new_tokens) // page_size) for p in prompts)
    engine = Engine(model, new_paged_cache(model, n_pages, page_size), max_batch=max_batch,
                    token_budget=token_budget, prefix_cache=prefix_cache, keep_logits=keep_logits,
                    cuda_graphs=cuda_graphs)
    reqs = [Request(i, list(p), max_new_tokens, temperature, top_k, seed + i) for i, p in enumerate(prompts)]
    return engine.run(reqs)
