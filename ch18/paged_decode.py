"""FlexDecoding: one decode step's attention read straight from the KV pages, vs gathering them first.

The engine's paged cache (`inference/paged_kv.py`) keeps keys and values in a pool of fixed-size pages; a
sequence's block table lists its pages in order. Its decode path gathers each sequence's pages into a contiguous
(padded) tensor and then calls SDPA: every live KV byte is read, written, and read again. A paged kernel reads
each page where it lies, once:

- `triton_paged`: one Triton program per (sequence, kv head) walks the block table, loads BLOCK_N keys/values
  at a time by slot (page * page_size + offset), and keeps an online softmax; the `groups` query heads that
  share a kv head (GQA) are rows of one tile, padded to 16 so both products run on tensor cores.
- `flex_paged`: `flex_attention` over the whole pool, driven by a BlockMask built from the block table: the kv
  blocks of sequence b are its pages (block size = page size), full pages skip the mask, and the last page's
  mask_mod hides slots past the sequence's length. Compiled with `torch.compile` (FlexDecoding's kernel); a GPU
  variant (eager flex on the CPU materializes scores over the whole pool: the tests check it there, untimed).

Layout as in the engine: k/v pools (slots, kv_heads, head_dim), slot = page * page_size + offset; pages are
handed out shuffled, so a sequence's pages are scattered over the pool; the pool has room for every sequence at
the longest length, so shapes do not change with the lengths drawn (compiled flex would recompile). Shapes at
`full` are one layer of the 8B config (32 query heads, 8 kv heads, head_dim 128), 32 sequences of 4096..8192
tokens, pages of 128 tokens.

Distributions: `normal` (scores of std ~2); `large_scores` (queries 50x larger: scores of std ~100, past 88, where
exp overflows fp32 unless the running max is subtracted, and the softmax is nearly one-hot); `edge_lengths`
(each sequence 1 token, exactly one page, one page and one token, or the longest: a single-key softmax, a
last page that is full, a page holding one live slot).

Bound: the KV bytes read once, sum(lengths) * kv_heads * head_dim * 2 (k, v) * 2 bytes = ~0.8 GB at full, so
~0.19 ms at the H200's 4.2 TB/s copy bandwidth; the gather baseline moves about 3x that (read, write padded,
read again). Goal: the paged kernels >= 2x the gather baseline, triton_paged >= 0.7 of copy bandwidth.
"""
import math  # noqa: I001 (ch14.triton_runtime must come before triton)

import torch
import torch.nn.functional as F

from ch14.triton_runtime import INTERPRET, TRITON
import triton
import triton.language as tl
from harness import Example, Requires, Variant, main

# batch, query heads, kv heads, head_dim, page size, (shortest, longest) sequence
SHAPES = {"tiny": (3, 4, 2, 16, 16, (5, 40)), "small": (16, 32, 8, 128, 64, (512, 2048)),
          "full": (32, 32, 8, 128, 128, (4096, 8192))}


def make_pool(lengths: list[int], max_len: int, page_size: int, kv_heads: int, head_dim: int, dtype, device, g,
              spare: int = 4):
    """A pool with room for every sequence at max_len (its shape does not depend on the lengths drawn), pages
    handed out shuffled, and the block tables (padded with page 0) that find each sequence's pages."""
    width = -(-max_len // page_size)
    n_pages = len(lengths) * width + spare
    order = torch.randperm(n_pages, generator=torch.Generator().manual_seed(int(g.initial_seed()) % 2**31))
    table = torch.zeros(len(lengths), width, dtype=torch.int32)
    at = 0
    for b, n in enumerate(lengths):
        need = -(-n // page_size)
        table[b, :need] = order[at:at + need]
        at += need
    k = torch.randn(n_pages * page_size, kv_heads, head_dim, generator=g, device=device).to(dtype)
    v = torch.randn(n_pages * page_size, kv_heads, head_dim, generator=g, device=device).to(dtype)
    return k, v, table.to(device)


def setup(size, device, seed, page_size=None, dist="normal"):
    """page_size: the size's own unless given (the page-size sweep, ch18/kv_page_sweep.py)."""
    b, hq, hkv, hd, ps, (lo, hi) = SHAPES[size]
    ps = page_size or ps
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32  # interpreter: fp32 dots only
    g = torch.Generator(device=device).manual_seed(seed)
    cpu = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi + 1, (b,), generator=cpu).tolist()
    if dist == "edge_lengths":
        edges = torch.tensor([1, min(ps, hi), min(ps + 1, hi), hi])
        lengths = edges[torch.randint(0, 4, (b,), generator=cpu)].tolist()
    k, v, table = make_pool(lengths, hi, ps, hkv, hd, dtype, device, g)
    q_scale = 100.0 if dist == "large_scores" else 2.0     # scores of std ~2: peaked enough; ~100: overflow territory
    q = (q_scale * torch.randn(b, hq, hd, generator=g, device=device)).to(dtype)
    return {"q": q, "k": k, "v": v, "block_table": table,
            "lengths": torch.tensor(lengths, dtype=torch.int32, device=device), "page_size": ps}


def gather_then_sdpa(inputs):
    """The engine's way: gather each sequence's slots into a padded (b, kv_heads, longest, hd) tensor, mask, SDPA."""
    q, k, v, table, lengths, ps = (inputs[n] for n in ("q", "k", "v", "block_table", "lengths", "page_size"))
    b, hq, hd = q.shape
    hkv = k.shape[1]
    longest = int(lengths.max())
    pos = torch.arange(longest, device=q.device)
    slots = table.long().gather(1, (pos // ps).expand(b, -1)) * ps + pos % ps        # (b, longest)
    keys, vals = k[slots].permute(0, 2, 1, 3), v[slots].permute(0, 2, 1, 3)          # (b, hkv, longest, hd)
    mask = (pos[None, :] < lengths[:, None])[:, None, None, :]
    qg = q.view(b, hkv, hq // hkv, hd)  # GQA: a kv head's query heads are its query rows
    return F.scaled_dot_product_attention(qg, keys, vals, attn_mask=mask).reshape(b, hq, hd)


@triton.jit
def paged_decode_kernel(q_ptr, k_ptr, v_ptr, table_ptr, len_ptr, out_ptr, scale,
                        stride_qb, stride_qh, stride_ks, stride_kh, stride_tb, stride_ob, stride_oh,
                        GROUPS: tl.constexpr, G_PAD: tl.constexpr, HEAD_DIM: tl.constexpr,
                        PAGE: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0)
    kvh = tl.program_id(1)
    length = tl.load(len_ptr + b)
    g = tl.arange(0, G_PAD)
    d = tl.arange(0, HEAD_DIM)
    heads = kvh * GROUPS + g
    q = tl.load(q_ptr + b * stride_qb + heads[:, None] * stride_qh + d[None, :], mask=g[:, None] < GROUPS, other=0.0)
    m = tl.full([G_PAD], float("-inf"), tl.float32)
    l_sum = tl.zeros([G_PAD], tl.float32)
    acc = tl.zeros([G_PAD, HEAD_DIM], tl.float32)
    for start in range(0, length, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        live = n < length
        page = tl.load(table_ptr + b * stride_tb + n // PAGE, mask=live, other=0)
        slot = (page.to(tl.int64) * PAGE + n % PAGE) * stride_ks + kvh * stride_kh
        kt = tl.load(k_ptr + slot[:, None] + d[None, :], mask=live[:, None], other=0.0)
        s = tl.dot(q, tl.trans(kt)) * scale                                    # (G_PAD, BLOCK_N), fp32
        s = tl.where(live[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(s - m_new[:, None])
        l_sum = l_sum * alpha + tl.sum(p, 1)
        vt = tl.load(v_ptr + slot[:, None] + d[None, :], mask=live[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt)
        m = m_new
    out = acc / l_sum[:, None]
    tl.store(out_ptr + b * stride_ob + heads[:, None] * stride_oh + d[None, :], out.to(out_ptr.dtype.element_ty),
             mask=g[:, None] < GROUPS)


def paged_decode(q, k, v, table, lengths, page_size, block_n=None):
    """Decode attention for q (b, heads, hd) over paged k/v (slots, kv_heads, hd); reads each live slot once."""
    b, hq, hd = q.shape
    hkv = k.shape[1]
    out = torch.empty_like(q)
    block_n = block_n or (16 if INTERPRET else 64)
    paged_decode_kernel[(b, hkv)](
        q, k, v, table, lengths, out, 1.0 / math.sqrt(hd),
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), table.stride(0), out.stride(0), out.stride(1),
        GROUPS=hq // hkv, G_PAD=max(16, triton.next_power_of_2(hq // hkv)), HEAD_DIM=hd, PAGE=page_size,
        BLOCK_N=block_n, num_warps=4, num_stages=3)
    return out


def triton_paged(inputs):
    i = inputs
    return paged_decode(i["q"], i["k"], i["v"], i["block_table"], i["lengths"], i["page_size"])


_MASK_STATE = {}


def _mask_state(b: int, pool_pages: int, page_size: int, device):
    """One mask_mod per shape, reading tensors rewritten by every call: a new function object per call would
    make torch.compile guard on it and recompile each step."""
    key = (b, pool_pages, page_size, str(device))
    if key not in _MASK_STATE:
        logical = torch.full((b, pool_pages), -1, dtype=torch.int32, device=device)
        lengths = torch.zeros(b, dtype=torch.int32, device=device)

        def mask_mod(bi, h, q_idx, kv_idx):
            page = logical[bi, kv_idx // page_size]  # complete on its own: the block lists only skip work
            return (page >= 0) & (page * page_size + kv_idx % page_size < lengths[bi])

        _MASK_STATE[key] = (logical, lengths, mask_mod)
    return _MASK_STATE[key]


def paged_block_mask(table, lengths, page_size: int, n_slots: int):
    """A BlockMask whose kv blocks are pages: sequence b attends to its pages, all full but the last one.
    Its mask_mod reads buffers shared by every mask of this shape: valid until the next call for that shape."""
    from torch.nn.attention.flex_attention import BlockMask
    b = table.shape[0]
    n_pages = (lengths + page_size - 1) // page_size
    n_full = lengths // page_size
    # physical page -> its logical index in sequence b (-1: not b's), for the partial last page's mask_mod
    logical, lengths_now, mask_mod = _mask_state(b, n_slots // page_size, page_size, table.device)
    logical.fill_(-1)
    idx = torch.arange(table.shape[1], device=table.device, dtype=torch.int32).expand(b, -1)
    valid = idx < n_pages[:, None]
    rows = torch.arange(b, device=table.device)[:, None].expand_as(idx)
    logical[rows[valid], table[valid].long()] = idx[valid]
    lengths_now.copy_(lengths)
    # kv block lists, padded to the pool's page count (flex sizes its dense view by that): partial blocks are
    # the last page when it is not full, full blocks the pages before it
    pool_pages = n_slots // page_size
    full = torch.zeros(b, pool_pages, dtype=torch.int32, device=table.device)
    full[:, :table.shape[1]] = table
    partial = torch.zeros_like(full)
    partial[:, 0] = torch.gather(table, 1, (n_pages - 1).clamp(min=0)[:, None].long())[:, 0]
    partial_n = (n_pages - n_full).to(torch.int32)

    return BlockMask.from_kv_blocks(
        partial_n[:, None, None], partial[:, None, None, :],
        n_full.to(torch.int32)[:, None, None], full[:, None, None, :],
        BLOCK_SIZE=(128, page_size), mask_mod=mask_mod, seq_lengths=(1, n_slots))


_flex = {}  # device type -> flex_attention, compiled on first use (a warm-up call) on a GPU, eager on the CPU


def flex_paged(inputs):
    from torch.nn.attention.flex_attention import flex_attention
    q, k, v, table, lengths, ps = (inputs[n] for n in ("q", "k", "v", "block_table", "lengths", "page_size"))
    if q.device.type not in _flex:
        _flex[q.device.type] = torch.compile(flex_attention, dynamic=False) if q.is_cuda else flex_attention
    fn = _flex[q.device.type]
    mask = paged_block_mask(table, lengths, ps, k.shape[0])
    # the pool is one "batch" shared by every sequence: (1, kv_heads, slots, hd)
    kp, vp = k.permute(1, 0, 2).unsqueeze(0), v.permute(1, 0, 2).unsqueeze(0)
    out = fn(q.unsqueeze(2), kp, vp, block_mask=mask, enable_gqa=True)
    return out.squeeze(2)


def kv_bytes(inputs) -> int:
    k = inputs["k"]
    return int(inputs["lengths"].sum()) * k.shape[1] * k.shape[2] * 2 * k.element_size() + 2 * inputs["q"].nbytes


def flops(inputs) -> int:
    q = inputs["q"]
    return 4 * int(inputs["lengths"].sum()) * q.shape[1] * q.shape[2]  # QK^T and PV, live keys only


EXAMPLE = Example(
    title="Paged decode attention: gather pages then SDPA vs reading pages in place (Triton, FlexDecoding)",
    setup=setup,
    baseline=gather_then_sdpa,
    baseline_name="gather_sdpa",
    optimized={"triton_paged": Variant(triton_paged, requires=TRITON),
               # on the CPU flex runs eagerly over the whole pool (tests/test_ch18.py checks it there, untimed)
               "flex_paged": Variant(flex_paged, requires=Requires(cuda=True),
                                     note="compiled flex_attention + a BlockMask built from the block table")},
    bytes_moved=kv_bytes,
    flops=flops,
    flops_dtype="bf16",
    tolerance=(2e-2, 1e-2),  # bf16 inputs, fp32 softmax in every variant; sums in another order
    distributions=("normal", "large_scores", "edge_lengths"),
)

if __name__ == "__main__":
    main(EXAMPLE)
