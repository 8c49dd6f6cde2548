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

Attention here is simple and correct first: each layer gathers the sequences' pages into a contiguous tensor and
calls SDPA, once for all decode rows (one new token each) and once for all prefill chunks (queries padded to the
longest chunk), with the query heads of a kv head folded into query rows so GQA needs no repeated keys. All the
indexing (slots to write, slots to gather, masks) is computed once per step in `begin_step` and sent to the device
in one copy, so a layer is a fixed handful of tensor ops whatever the batch. Bound per decode step and layer: every
live KV byte is read for the gather, written, and read again by attention (3 x the KV bytes), where a fused paged
kernel reads them once.
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
    def begin_step(self, rows: list[tuple[int, int, int]], key_multiple: int = 16) -> None:
        """rows: (seq_id, start, n_new) in the order their tokens are packed; keys 0..start+n_new-1 must fit.

        Everything a layer needs is computed here, once per step, on the host, and sent in one copy: the slot of
        every new token, and for each group of rows (decodes; prefill chunks) which packed tokens are its
        queries, which slots hold its keys and the position of each query. The layers then run the same few
        tensor ops whatever the batch: no Python loop over sequences, no host sync inside the forward pass.
        Key ranges are padded to a multiple of `key_multiple` (a CUDA graph of a decode step wants few shapes)."""
        ps = self.page_size
        tables = [self.pages[s] for s, _, _ in rows]
        width = max(len(t) for t in tables)
        table = torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.long)  # (rows, pages)
        starts = torch.tensor([a for _, a, _ in rows])
        n_new = torch.tensor([n for _, _, n in rows])
        offsets = torch.cumsum(n_new, 0) - n_new
        row_of = torch.repeat_interleave(torch.arange(len(rows)), n_new)  # the row of each packed token
        pos = starts[row_of] + torch.arange(int(n_new.sum())) - offsets[row_of]
        parts = {"write_slots": table[row_of, pos // ps] * ps + pos % ps}
        self.groups = []
        for name, sel in (("decode", n_new == 1), ("prefill", n_new > 1)):
            idx = sel.nonzero().flatten()
            if len(idx):
                self.groups.append(name)
                parts |= {f"{name}_{k}": v for k, v in _group_indices(table[idx], starts[idx], n_new[idx],
                                                                      offsets[idx], ps, key_multiple).items()}
        self.in_order = len(self.groups) == 1 and bool((n_new == 1).all())
        # one host-to-device copy for the whole step (a pageable copy waits for the GPU: do it once, not per tensor)
        flat = torch.cat([v.flatten() for v in parts.values()]).to(self.device)
        self.idx = dict(zip(parts, (t.view(v.shape) for t, v in
                                    zip(flat.split([v.numel() for v in parts.values()]), parts.values(), strict=True)),
                            strict=True))
        groups = self.cfg.n_heads // self.cfg.n_kv_heads
        for name in self.groups:  # masks are built on the device, once per step: key j is seen by query at p if j <= p
            qpos = self.idx[f"{name}_qpos"].repeat(1, groups)  # query row g * longest + i is query i (see _attend_group)
            seen = torch.arange(self.idx[f"{name}_slots"].shape[1], device=self.device) <= qpos[..., None]
            # additive, in the cache's dtype: SDPA would convert a boolean mask to this in every layer
            self.idx[f"{name}_mask"] = torch.zeros(seen.shape, dtype=self.k.dtype, device=self.device).masked_fill_(
                ~seen, float("-inf"))[:, None]

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (1, heads, n_tokens, hd), k/v (1, kv_heads, n_tokens, hd), packed by row: write k/v, attend per row.
        Returns (1, heads, n_tokens, hd) laid out token-major, so the caller's transpose + reshape is a view."""
        kl, vl = self.k[layer], self.v[layer]
        kl.index_copy_(0, self.idx["write_slots"], k[0].transpose(0, 1))
        vl.index_copy_(0, self.idx["write_slots"], v[0].transpose(0, 1))
        if self.in_order:  # one group whose queries are the packed tokens in order (a decode-only step)
            ix = {k: self.idx[f"{self.groups[0]}_{k}"] for k in ("slots", "mask")}
            return _attend_group(q[0], kl, vl, ix).transpose(0, 1).unsqueeze(0)
        out = q.new_empty(q.shape[2], q.shape[1], q.shape[3])  # (n_tokens, heads, hd)
        for name in self.groups:
            ix = {k: self.idx[f"{name}_{k}"] for k in ("tok", "slots", "mask", "valid", "dest")}
            out.index_copy_(0, ix["dest"], _attend_group(q[0], kl, vl, ix))
        return out.transpose(0, 1).unsqueeze(0)


def _group_indices(table, starts, n_new, offsets, ps, key_multiple) -> dict[str, torch.Tensor]:
    """For rows of one group: query tokens (rows, longest chunk), key slots (rows, longest key range rounded up to
    key_multiple, at least 16: SDPA's kernels pad a mask to that in every call otherwise), query positions, and
    which padded queries are real (`valid`) with their packed token (`dest`). Padding repeats the row's last query
    and last key, so every padded query sees at least one key (no all-masked row: no NaN)."""
    longest_q, lens = int(n_new.max()), starts + n_new
    i = torch.minimum(torch.arange(longest_q)[None, :], (n_new - 1)[:, None])  # (rows, longest_q)
    n_keys = -(-int(lens.max()) // key_multiple) * key_multiple
    kpos = torch.minimum(torch.arange(n_keys)[None, :], (lens - 1)[:, None])
    valid = (torch.arange(longest_q)[None, :] < n_new[:, None]).flatten().nonzero().flatten()
    tok = offsets[:, None] + i
    return {"tok": tok, "slots": torch.gather(table, 1, kpos // ps) * ps + kpos % ps, "qpos": starts[:, None] + i,
            "valid": valid, "dest": tok.flatten()[valid]}


def _attend_group(q, kl, vl, ix) -> torch.Tensor:
    """One SDPA for a group of rows. q (heads, n_tokens, hd); returns (n_valid, heads, hd) for ix["dest"].

    Grouped-query attention without repeating keys: the `groups` query heads of one kv head become that head's
    query rows (head j reads kv head j // groups), so keys/values are used as gathered."""
    rows, longest_q = ix["tok"].shape if "tok" in ix else (q.shape[1], 1)  # no "tok": one query per row, in order
    heads, hd, kv_heads = q.shape[0], q.shape[-1], kl.shape[1]
    qg = (q[:, ix["tok"]] if "tok" in ix else q[:, :, None]).transpose(0, 1).reshape(rows, kv_heads, -1, hd)
    keys = kl[ix["slots"]].transpose(1, 2)  # (rows, kv_heads, longest key range, hd)
    vals = vl[ix["slots"]].transpose(1, 2)
    o = F.scaled_dot_product_attention(qg, keys, vals, attn_mask=ix["mask"])
    o = o.reshape(rows, heads, longest_q, hd).transpose(1, 2).reshape(rows * longest_q, heads, hd)
    return o if "valid" not in ix or o.shape[0] == ix["valid"].numel() else o[ix["valid"]]
