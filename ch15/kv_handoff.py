"""Handing a request's KV pages from a prefill engine to a decode engine in another process.

The prefill worker shares its whole KV pool once, at start-up, through `torch.multiprocessing`: a CUDA tensor
travels as a CUDA IPC handle (the decode process maps the same device memory; on another GPU of the node the copy
goes over NVLink/PCIe peer access), a CPU tensor as shared memory (so CI runs the same code). Per request only
page numbers travel; the decode worker pulls the pages into its own pool with one gather and one scatter per
K and V, synchronizes, and tells the prefill worker it may reuse them (a pull protocol, as disaggregated servers
such as vLLM's NIXL connector or Mooncake do over RDMA between nodes).

    pool = HoldingKVCache(...)             # prefill side: finished prefills keep their pages until released
    share_pool(pool)                        # CPU: move the pool to shared memory (CUDA: nothing to do)
    secs, nbytes = copy_pages(src_k, src_v, src_pages, decode_cache, rid, n_tokens)   # decode side
    adopt(engine, request)                  # the decode engine continues it as if it had prefilled it

Bound: bytes = 2 (K, V) * layers * pages * page_size * kv_heads * head_dim * element size (32 KiB per token at
the 1B config in bf16, 128 KiB at 8B); on one GPU each byte is read and written once in HBM (a gather into a
temporary and a scatter: 2 reads and 2 writes), so the copy takes about 4 * bytes / HBM bandwidth plus a
synchronize; between GPUs, bytes / the link's bandwidth.
"""
from __future__ import annotations

import time

import torch

from inference.paged_kv import PagedKVCache
from inference.scheduler import Engine, Request


class HoldingKVCache(PagedKVCache):
    """A paged cache whose finished requests keep their pages (`held`) until `release`: the engine frees a
    request's pages the step it finishes, but a prefill's pages must outlive it until the decode side has them.
    Any other free (preemption, an admission that did not fit) gives the pages back at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests: dict[int, Request] = {}  # rid -> request, to tell a finish from a preemption
        self.held: dict[int, list[int]] = {}

    def free(self, seq_id: int) -> None:
        req = self.requests.get(seq_id)
        if req is not None and req.done and seq_id in self.pages:
            self.held[seq_id] = self.pages.pop(seq_id)
            del self.requests[seq_id]
        else:
            super().free(seq_id)

    def release(self, seq_id: int) -> None:
        for p in self.held.pop(seq_id):
            self.allocator.decref(p)


class PrefillEngine(Engine):
    """The engine, run for prefill only: every request stops after its first token and its KV pages are held."""

    def add(self, req: Request) -> None:
        self.cache.requests[req.rid] = req
        super().add(req)


def share_pool(cache: PagedKVCache) -> None:
    if cache.k.device.type == "cpu":  # a CUDA tensor is shared by IPC handle as it is
        cache.k.share_memory_()
        cache.v.share_memory_()


def _pages_view(t: torch.Tensor, page_size: int) -> torch.Tensor:
    layers, slots, kv_heads, hd = t.shape
    return t.view(layers, slots // page_size, page_size, kv_heads, hd)


def copy_pages(src_k: torch.Tensor, src_v: torch.Tensor, src_pages: list[int], dst: PagedKVCache, rid: int,
               n_tokens: int) -> tuple[float, int]:
    """Reserve pages for rid's first n_tokens in dst and copy them from the source pool (same page size);
    returns (seconds, bytes), the copy synchronized (the source may reuse its pages once this returns)."""
    assert dst.reserve(rid, n_tokens), "the caller checks that the pages fit"
    ps = dst.page_size
    n_pages = -(-n_tokens // ps)
    t0 = time.perf_counter()
    src_idx = torch.tensor(src_pages[:n_pages], device=src_k.device)
    dst_idx = torch.tensor(dst.pages[rid][:n_pages], device=dst.k.device)
    for s, d in ((src_k, dst.k), (src_v, dst.v)):
        _pages_view(d, ps)[:, dst_idx] = _pages_view(s, ps)[:, src_idx].to(d.device, non_blocking=True)
    for dev in {src_k.device, dst.k.device}:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    nbytes = 2 * n_pages * ps * dst.k.shape[0] * dst.k.shape[2] * dst.k.shape[3] * dst.k.element_size()
    return time.perf_counter() - t0, nbytes


def pages_equal(src_k, src_v, src_pages: list[int], dst: PagedKVCache, rid: int, n_tokens: int) -> bool:
    """The transferred keys/values, bit for bit (the check of the transfer itself; the tests check the tokens)."""
    ps = dst.page_size
    slots = torch.arange(n_tokens)
    src = (torch.tensor(src_pages)[slots // ps] * ps + slots % ps)
    dsl = (torch.tensor(dst.pages[rid])[slots // ps] * ps + slots % ps)
    return all(torch.equal(s[:, src.to(s.device)].to(d.device), d[:, dsl.to(d.device)])
               for s, d in ((src_k, dst.k), (src_v, dst.v)))


def adopt(engine: Engine, req: Request) -> None:
    """Continue a request whose prompt's keys/values are already in engine.cache and whose first token is in
    req.output: it joins the running batch as a decode (the engine's own preemption still applies to it)."""
    req.n_computed = len(req.prompt)
    engine.running.append(req)
