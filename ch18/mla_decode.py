"""Multi-head latent attention (MLA, DeepSeek-V2) at decode: attend in the latent space, never decompress K/V.

MLA caches, per token, one compressed latent c (kv_lora_rank = 512) and one decoupled RoPE key k_r (64) shared
by all heads: 576 values instead of 2 x heads x head_dim. Per head, keys are [c @ W_UK[h]^T, k_r] and values
c @ W_UV[h]^T. The naive decode decompresses the whole cache every step: (b, heads, L, 192) keys and
(b, heads, L, 128) values written and read again, heads x (192 + 128) / 576 times the latent's bytes (71x at
128 heads, 8.9x at 16).

Absorbed: q_nope . (c W_UK^T) = (q_nope W_UK) . c, so each head's query is moved into the latent space once
(q_lat = q_nope @ W_UK[h], 512 wide), scores are q_lat . c + q_r . k_r, and the output (P @ c) @ W_UV[h]^T is
projected back after the softmax. The cache is read as stored, once per step.

- `naive_decompress` (baseline): decompress K and V for every cached token, then SDPA; what one writes first.
- `absorbed_torch` (optimized): the absorbed math in PyTorch (bmm/einsum over the latent cache).
- `triton_mla` (optimized): one Triton program per (BLOCK_H heads, sequence) streams the latent cache in
  BLOCK_N-token tiles: scores by two tensor-core dots (latent and rope parts), an online softmax, P @ c
  accumulated in fp32 (BLOCK_H x 512). The head blocks of a sequence run side by side, so its cache comes from
  DRAM about once and from L2 heads / BLOCK_H times (at 128 heads and 16 per block, that L2 traffic would be
  the limit, hence BLOCK_H up to 64). The tokens are split over 1-4 programs (flash-decoding, merged after) to
  keep every SM busy; the fastest of a few configurations is picked at the first call. The absorption matmuls
  before and after are cuBLAS.

Shapes at `full`: DeepSeek-V2's attention (kv_lora_rank 512, qk_nope 128, rope 64, v 128) as one GPU of a
tensor-parallel-8 deployment holds it: 16 of its 128 heads (the latent cache is not sharded: every GPU reads all
of it), 64 sequences of 8192 cached tokens, bf16. Bytes per step: the latent cache 64 x 8192 x 576 x 2 = 604 MB,
plus the absorption weights (2 x 16 x 128 x 512 x 2 = 4.2 MB) and the queries: 0.143 ms at the H200's 4.22 TB/s
copy bandwidth. FLOPs: 2 x 64 x 16 x 8192 x (576 + 512) = 18.3 GFLOP, 0.026 ms at its 694 TFLOP/s bf16 GEMM
rate: memory-bound by 5x. (With all 128 heads on one GPU the FLOPs grow 8x and the bytes do not: 0.21 ms of
matrix work against 0.08 ms of reading at 32 sequences, past the ridge, so a bandwidth goal would not apply.)
Goal: triton_mla >= 0.7 of copy bandwidth (bytes above); >= 5x the naive baseline (which moves ~9x the latent's
bytes at 16 heads, twice: written, then read by SDPA).

Not verified on large scores: where a softmax without the max subtraction would overflow (scores past 88), bf16
rounding decides the answer. `absorbed_torch` rounds q . c to bf16 (an ulp of 0.5 at 100) and the baseline
rounds the decompressed keys instead, so two honest variants differ by more than any tolerance there. The
kernel subtracts the running max (`m_new` below); the queries' scale keeps scores at std ~2.
"""
import math  # noqa: I001 (ch14.triton_runtime must come before triton)

import torch
import torch.nn.functional as F

from ch14.triton_runtime import INTERPRET, TRITON
import triton
import triton.language as tl
from harness import Example, Variant, main

# batch, heads, cached tokens, kv_lora_rank, rope dim, qk_nope dim, v dim
SHAPES = {"tiny": (2, 16, 37, 64, 16, 32, 32), "small": (16, 16, 4096, 512, 64, 128, 128),
          "full": (64, 16, 8192, 512, 64, 128, 128)}


def setup(size, device, seed):
    b, h, n, rank, dr, dn, dv = SHAPES[size]
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32  # interpreter: fp32 dots only
    g = torch.Generator(device=device).manual_seed(seed)
    rnd = lambda *shape, scale=1.0: (torch.randn(*shape, generator=g, device=device) * scale).to(dtype)  # noqa: E731
    return {
        # queries at twice unit scale: scores of std ~2, so attention is peaked enough that outputs are not ~0
        "q_nope": rnd(b, h, dn, scale=2.0), "q_rope": rnd(b, h, dr, scale=2.0),
        "latent": rnd(b, n, rank + dr),                       # the cache: [c (rank) | k_rope (dr)] per token
        "w_uk": rnd(h, dn, rank, scale=rank ** -0.5),          # k_nope[h] = c @ w_uk[h]^T   (entries ~ N(0, 1))
        "w_uv": rnd(h, dv, rank, scale=rank ** -0.5),          # v[h]      = c @ w_uv[h]^T
    }


def naive_decompress(inputs):
    q_nope, q_rope, latent, w_uk, w_uv = (inputs[n] for n in ("q_nope", "q_rope", "latent", "w_uk", "w_uv"))
    rank = w_uk.shape[2]
    c, k_rope = latent[..., :rank], latent[..., rank:]
    h = q_nope.shape[1]
    k_nope = torch.einsum("bnr,hdr->bhnd", c, w_uk)                 # (b, h, n, dn): the decompressed keys
    v = torch.einsum("bnr,hdr->bhnd", c, w_uv)                      # (b, h, n, dv)
    k = torch.cat([k_nope, k_rope[:, None].expand(-1, h, -1, -1)], dim=-1)
    q = torch.cat([q_nope, q_rope], dim=-1)[:, :, None]             # (b, h, 1, dn + dr)
    return F.scaled_dot_product_attention(q, k, v)[:, :, 0]         # scale 1/sqrt(dn + dr), as MLA's


def absorbed_torch(inputs):
    q_nope, q_rope, latent, w_uk, w_uv = (inputs[n] for n in ("q_nope", "q_rope", "latent", "w_uk", "w_uv"))
    rank = w_uk.shape[2]
    scale = 1.0 / math.sqrt(q_nope.shape[-1] + q_rope.shape[-1])
    q_lat = torch.einsum("bhd,hdr->bhr", q_nope, w_uk)              # the query moved into the latent space
    q_full = torch.cat([q_lat, q_rope], dim=-1)                     # (b, h, rank + dr) against [c | k_rope]
    p = torch.softmax((q_full @ latent.transpose(1, 2)).float() * scale, dim=-1).to(latent.dtype)  # (b, h, n)
    out_lat = p @ latent[..., :rank]                                # (b, h, rank)
    return torch.einsum("bhr,hdr->bhd", out_lat, w_uv)


@triton.jit
def mla_decode_kernel(q_ptr, latent_ptr, out_ptr, acc_ptr, ml_ptr, n_tokens, split_len, scale,
                      stride_qb, stride_qh, stride_lb, stride_ln, stride_ob, stride_oh,
                      RANK: tl.constexpr, ROPE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr,
                      SPLITS: tl.constexpr):
    hb = tl.program_id(0)  # head block first: the programs of one sequence run together and share its cache in L2
    b = tl.program_id(1)
    split = tl.program_id(2)
    heads = hb * BLOCK_H + tl.arange(0, BLOCK_H)
    r = tl.arange(0, RANK)
    e = tl.arange(0, ROPE)
    q_row = q_ptr + b * stride_qb + heads[:, None] * stride_qh
    q_lat = tl.load(q_row + r[None, :])                     # (BLOCK_H, RANK)
    q_rope = tl.load(q_row + RANK + e[None, :])             # (BLOCK_H, ROPE)
    m = tl.full([BLOCK_H], float("-inf"), tl.float32)
    l_sum = tl.zeros([BLOCK_H], tl.float32)
    acc = tl.zeros([BLOCK_H, RANK], tl.float32)
    base = latent_ptr + b.to(tl.int64) * stride_lb
    lo = split * split_len
    hi = tl.minimum(lo + split_len, n_tokens)
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        live = n < hi
        rows = base + n[:, None].to(tl.int64) * stride_ln
        c = tl.load(rows + r[None, :], mask=live[:, None], other=0.0)            # (BLOCK_N, RANK)
        kr = tl.load(rows + RANK + e[None, :], mask=live[:, None], other=0.0)    # (BLOCK_N, ROPE)
        s = (tl.dot(q_lat, tl.trans(c)) + tl.dot(q_rope, tl.trans(kr))) * scale  # (BLOCK_H, BLOCK_N)
        s = tl.where(live[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(s - m_new[:, None])
        l_sum = l_sum * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(c.dtype), c)                    # values are c itself
        m = m_new
    if SPLITS == 1:
        out = acc / l_sum[:, None]
        tl.store(out_ptr + b * stride_ob + heads[:, None] * stride_oh + r[None, :], out.to(out_ptr.dtype.element_ty))
    else:  # partial results in fp32, merged by merge_splits: acc (b, heads, splits, RANK), [max, sum] (.., 2)
        n_heads = tl.num_programs(0) * BLOCK_H
        row = ((b * n_heads + heads) * SPLITS + split).to(tl.int64)
        tl.store(acc_ptr + row[:, None] * RANK + r[None, :], acc)
        tl.store(ml_ptr + row * 2, m)
        tl.store(ml_ptr + row * 2 + 1, l_sum)


def merge_splits(acc: torch.Tensor, ml: torch.Tensor) -> torch.Tensor:
    """Flash-decoding's merge: rescale each split's (acc, sum) to the global max and add; acc is read once."""
    m, l_sum = ml[..., 0], ml[..., 1]
    w = torch.exp(m - m.amax(dim=2, keepdim=True))  # an empty split has m = -inf: weight 0
    return torch.einsum("bhsr,bhs->bhr", acc, w) / (l_sum * w).sum(2)[..., None]


def mla_attention(q_full, latent, rank: int, scale: float, block_h: int, block_n: int, splits: int,
                  warps: int = 4, stages: int = 2) -> torch.Tensor:
    """Latent-space attention: q_full (b, h, rank + rope) against latent (b, n, rank + rope); (b, h, rank)."""
    b, h, _ = q_full.shape
    n_tokens = latent.shape[1]
    out = torch.empty(b, h, rank, device=q_full.device, dtype=q_full.dtype)
    acc = torch.empty(b, h, splits, rank, device=q_full.device, dtype=torch.float32) if splits > 1 else out
    ml = torch.empty(b, h, splits, 2, device=q_full.device, dtype=torch.float32) if splits > 1 else out
    split_len = -(-n_tokens // splits)
    split_len = -(-split_len // block_n) * block_n  # whole tiles per split
    mla_decode_kernel[(h // block_h, b, splits)](
        q_full, latent, out, acc, ml, n_tokens, split_len, scale,
        q_full.stride(0), q_full.stride(1), latent.stride(0), latent.stride(1), out.stride(0), out.stride(1),
        RANK=rank, ROPE=q_full.shape[-1] - rank, BLOCK_H=block_h, BLOCK_N=block_n, SPLITS=splits,
        num_warps=warps, num_stages=stages)
    return out if splits == 1 else merge_splits(acc, ml).to(q_full.dtype)


# (BLOCK_H, BLOCK_N, warps, stages, SPLITS). BLOCK_H is the knob that matters: a sequence's latent is read from L2
# once per head block (heads / BLOCK_H times: 8x at 16 heads of 128, 2x at 64), at the price of a (BLOCK_H x 512)
# fp32 accumulator in registers and fewer programs (heads / BLOCK_H x batch: 64 at BLOCK_H = 64, half the SMs),
# which SPLITS (flash-decoding's split over tokens, merged after) restores, for 2 KiB of partials per head and split.
GPU_CANDIDATES = [(16, 32, 4, 2, 1), (16, 32, 4, 2, 2), (16, 64, 4, 2, 2), (16, 32, 4, 3, 4), (16, 64, 8, 2, 4),
                  (32, 32, 8, 2, 2), (64, 32, 8, 2, 2), (64, 32, 8, 2, 4), (64, 16, 8, 3, 4)]
INTERPRETER_CANDIDATES = [(16, 16, 4, 1, 1)]
_chosen: dict[tuple, tuple] = {}


def _pick(q_full, latent, rank: int, scale: float) -> tuple:
    """The fastest candidate for this shape, timed once at the first call (a warm-up call); ones that do not
    compile or fit (registers, shared memory) are skipped."""
    key = (tuple(q_full.shape), tuple(latent.shape), q_full.dtype, q_full.device.type)
    if key not in _chosen:
        h = q_full.shape[1]
        fits = [c for c in (INTERPRETER_CANDIDATES if INTERPRET else GPU_CANDIDATES) if h % c[0] == 0]
        if INTERPRET or len(fits) == 1:
            _chosen[key] = fits[0]
        else:
            from triton.testing import do_bench
            best = (float("inf"), fits[0])
            for cand in fits:
                try:
                    t = do_bench(lambda c=cand: mla_attention(q_full, latent, rank, scale, c[0], c[1], c[4], c[2], c[3]),
                                 warmup=5, rep=20)
                except Exception:  # noqa: BLE001 (out of resources, or a configuration this Triton refuses)
                    continue
                best = min(best, (t, cand))
            _chosen[key] = best[1]
    return _chosen[key]


def triton_mla(inputs):
    q_nope, q_rope, latent, w_uk, w_uv = (inputs[n] for n in ("q_nope", "q_rope", "latent", "w_uk", "w_uv"))
    h = q_nope.shape[1]
    rank, dr = w_uk.shape[2], q_rope.shape[-1]
    assert h % 16 == 0, f"heads ({h}) must be a multiple of 16 (the smallest head block)"
    scale = 1.0 / math.sqrt(q_nope.shape[-1] + dr)
    q_full = torch.cat([torch.einsum("bhd,hdr->bhr", q_nope, w_uk), q_rope], dim=-1).contiguous()
    block_h, block_n, warps, stages, splits = _pick(q_full, latent, rank, scale)
    out_lat = mla_attention(q_full, latent, rank, scale, block_h, block_n, splits, warps, stages)
    return torch.einsum("bhr,hdr->bhd", out_lat, w_uv)


def bytes_moved(inputs) -> int:
    """What a step must read: the latent cache once, the absorption weights, the queries; and write the output."""
    reads = sum(inputs[n].nbytes for n in ("q_nope", "q_rope", "latent", "w_uk", "w_uv"))
    b, h, _ = inputs["q_nope"].shape
    return reads + b * h * inputs["w_uv"].shape[1] * inputs["latent"].element_size()


def flops(inputs) -> int:
    b, h, dn = inputs["q_nope"].shape
    n, width = inputs["latent"].shape[1:]
    rank, dv = inputs["w_uk"].shape[2], inputs["w_uv"].shape[1]
    return 2 * b * h * n * (width + rank) + 2 * b * h * rank * (dn + dv)  # absorbed: scores, P @ c, projections


# no edge distributions: the softmax's edge (scores past 88, where exp without the max overflows) cannot be
# verified here: see the docstring (bf16 rounding of the scores moves an honest variant beyond tolerance).
EXAMPLE = Example(
    title="MLA decode: decompress K/V then SDPA vs attention in the latent space (absorbed; Triton)",
    setup=setup,
    baseline=naive_decompress,
    baseline_name="naive_decompress",
    optimized={"absorbed_torch": absorbed_torch, "triton_mla": Variant(triton_mla, requires=TRITON)},
    bytes_moved=bytes_moved,
    flops=flops,
    flops_dtype="bf16",
    tolerance=(2e-2, 1e-2),  # bf16: the absorbed query is rounded to bf16 once more than the naive path's keys
)

if __name__ == "__main__":
    main(EXAMPLE)
