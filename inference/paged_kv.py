"""A paged KV cache: keys and values live in fixed-size pages drawn from one pool; each sequence owns a list of
pages (its block table), so memory is committed a page at a time as a sequence grows, not max_seq up front.

    cache = PagedKVCache(cfg, n_pages=64, page_size=16, dtype, device)
    cache.reserve(seq_id, n_tokens)            # pages to hold n_tokens (False if the pool is out of pages)
    cache.begin_step([(seq_id, start, n_new), ...])  # the sequences and token ranges of this forward pass
    model(tokens, cache=cache, positions=pos)  # each Attention layer calls cache.attend(...)
    cache.free(seq_id)

Pages are reference-counted: a prefix cache (`inference/prefix_cache.py`) shares the pages of a common prompt
prefix between sequences. Only full pages are shared and a sequence writes only past its shared prefix, so no
page is ever written by two owners (no copy-on-write).

A contiguous cache is the special case page_size = max_seq with the whole page reserved when a sequence starts;
`ch16` compares the two at one memory budget.

Attention here is simple and correct first: each layer gathers a sequence's pages into a contiguous tensor and
calls SDPA. Decode rows (one new token) share one batched SDPA over keys padded to the longest sequence (the
query heads of a kv head folded into query rows, so GQA needs no repeated keys); prefill chunks get one SDPA
each. Bound per decode step and layer: every live KV byte is read for the gather, written, and read again by
attention (3 x the KV bytes), where a fused paged kernel reads them once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from inference.model import Config


class PageAllocator:
    """A free list of page ids with reference counts."""

    def __init__(self, n_pages: int):
        self.n_pages = n_pages
        self.free_pages = list(range(n_pages - 1, -1, -1))  # pop() hands out page 0 first
        self.refs = [0] * n_pages

    def n_free(self) -> int:
        return len(self.free_pages)

    def alloc(self) -> int:
        page = self.free_pages.pop()
        self.refs[page] = 1
        return page

    def incref(self, page: int) -> None:
        assert self.refs[page] > 0, f"page {page} is free"
        self.refs[page] += 1

    def decref(self, page: int) -> None:
        assert self.refs[page] > 0, f"page {page} freed twice"
        self.refs[page] -= 1
        if self.refs[page] == 0:
            self.free_pages.append(page)


class PagedKVCache:
    def __init__(self, cfg: Config, n_pages: int, page_size: int, dtype: torch.dtype, device):
        self.cfg, self.page_size, self.n_pages = cfg, page_size, n_pages
        # slot = page * page_size + offset: one flat slot axis makes writes an index_copy and reads a gather
        shape = (cfg.n_layers, n_pages * page_size, cfg.n_kv_heads, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.device = torch.device(device)
        self.allocator = PageAllocator(n_pages)
        self.pages: dict[int, list[int]] = {}  # seq_id -> its block table
        self.on_out_of_pages = None  # set by a prefix cache: frees cached pages on demand; returns pages freed

    @staticmethod
    def bytes_per_token(cfg: Config, dtype: torch.dtype) -> int:
        return 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * torch.empty((), dtype=dtype).element_size()

    # ---- page bookkeeping ----
    def pages_needed(self, seq_id: int, n_tokens: int) -> int:
        have = len(self.pages.get(seq_id, ()))
        return max(0, -(-n_tokens // self.page_size) - have)

    def reserve(self, seq_id: int, n_tokens: int) -> bool:
        """Grow seq_id's block table to hold n_tokens; False (nothing allocated) if the pool cannot."""
        need = self.pages_needed(seq_id, n_tokens)
        if need > self.allocator.n_free() and self.on_out_of_pages is not None:
            self.on_out_of_pages(need - self.allocator.n_free())
        if need > self.allocator.n_free():
            return False
        table = self.pages.setdefault(seq_id, [])
        table.extend(self.allocator.alloc() for _ in range(need))
        return True

    def attach(self, seq_id: int, shared_pages: list[int]) -> None:
        """Start seq_id with pages that already hold its first len(shared_pages) * page_size tokens."""
        assert seq_id not in self.pages
        for p in shared_pages:
            self.allocator.incref(p)
        self.pages[seq_id] = list(shared_pages)

    def free(self, seq_id: int) -> None:
        for p in self.pages.pop(seq_id, []):
            self.allocator.decref(p)

    # ---- one forward pass ----
    def begin_step(self, rows: list[tuple[int, int, int]]) -> None:
        """rows: (seq_id, start, n_new) in the order their tokens are packed; keys 0..start+n_new-1 must fit.

        Slot indices are computed for the whole step at once from a padded block table (a few tensor ops, not a
        few per sequence): the scheduler's cost per step should not grow with the batch faster than the GPU's."""
        dev, ps = self.device, self.page_size
        tables = [self.pages[s] for s, _, _ in rows]
        width = max(len(t) for t in tables)
        table = torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.long)  # (rows, pages)
        starts = torch.tensor([a for _, a, _ in rows])
        n_new = torch.tensor([n for _, _, n in rows])
        offsets = torch.cumsum(n_new, 0) - n_new
        row_of = torch.repeat_interleave(torch.arange(len(rows)), n_new)  # the row of each packed token
        pos = starts[row_of] + torch.arange(int(n_new.sum())) - offsets[row_of]
        self.write_slots = (table[row_of, pos // ps] * ps + pos % ps).to(dev)
        self.decode_idx = [i for i, (_, _, n) in enumerate(rows) if n == 1]
        # decode rows: keys 0..start, padded to the longest (padding repeats a valid slot and is masked out)
        if self.decode_idx:
            d = torch.tensor(self.decode_idx)
            lens = starts[d] + 1
            kpos = torch.minimum(torch.arange(int(lens.max()))[None, :], (lens - 1)[:, None])
            self.decode_gather = (torch.gather(table[d], 1, kpos // ps) * ps + kpos % ps).to(dev)
            self.decode_mask = (torch.arange(kpos.shape[1])[None, :] < lens[:, None]).to(dev)[:, None, None, :]
            self.decode_tok = offsets[d].to(dev)
        # prefill rows (chunks of a prompt): one SDPA each, queries at start..start+n-1
        self.prefill = []
        for i, (s, a, n) in enumerate(rows):
            if n > 1:
                kp = torch.arange(a + n)
                self.prefill.append((int(offsets[i]), s, a, n, (table[i, kp // ps] * ps + kp % ps).to(dev)))

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (1, heads, n_tokens, hd), k/v (1, kv_heads, n_tokens, hd), packed by row: write k/v, attend per row."""
        kl, vl = self.k[layer], self.v[layer]
        kl.index_copy_(0, self.write_slots, k[0].transpose(0, 1))
        vl.index_copy_(0, self.write_slots, v[0].transpose(0, 1))
        out = torch.empty_like(q)
        groups = q.shape[1] // k.shape[1]
        if self.decode_idx:
            # grouped-query decode: the `groups` query heads of one kv head become that head's query rows, so
            # keys/values are used as gathered, not repeated per query head (head j reads kv head j // groups)
            b, kvh, hd = len(self.decode_idx), k.shape[1], q.shape[-1]
            qd = q[0, :, self.decode_tok].transpose(0, 1).reshape(b, kvh, groups, hd)
            keys = kl[self.decode_gather].permute(0, 2, 1, 3)  # (b, kv_heads, longest, hd)
            vals = vl[self.decode_gather].permute(0, 2, 1, 3)
            od = F.scaled_dot_product_attention(qd, keys, vals, attn_mask=self.decode_mask)
            out[0, :, self.decode_tok] = od.reshape(b, kvh * groups, hd).transpose(0, 1)
        for off, _, start, n, slots in self.prefill:
            qp = q[:, :, off:off + n]
            keys, vals = kl[slots].permute(1, 0, 2).unsqueeze(0), vl[slots].permute(1, 0, 2).unsqueeze(0)
            if groups > 1:
                keys, vals = keys.repeat_interleave(groups, dim=1), vals.repeat_interleave(groups, dim=1)
            if start == 0:
                o = F.scaled_dot_product_attention(qp, keys, vals, is_causal=True)
            else:  # query i sits at start + i and sees keys 0 .. start + i
                mask = torch.arange(start + n, device=q.device)[None, :] <= (start + torch.arange(n, device=q.device))[:, None]
                o = F.scaled_dot_product_attention(qp, keys, vals, attn_mask=mask)
            out[:, :, off:off + n] = o
        return out
