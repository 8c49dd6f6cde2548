"""Search template: causal flash attention (forward) in Triton.

One program owns BLOCK_M query rows of one (batch, head) and walks the key/value blocks up to its
diagonal with an online softmax (running max m, running sum l, rescaled accumulator), so the S x S score
matrix never reaches memory and the blocks above the diagonal are skipped. Bound: 2 * 2 * b * h * s^2 * d / 2
FLOPs at the tensor-core peak; bytes are 4 * b * h * s * d elements when K/V stay in L2.
Knobs: BLOCK_M, BLOCK_N, num_warps, num_stages.
"""
from __future__ import annotations

PLAIN = {"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 2}


def space(device_type: str) -> dict[str, list]:
    if device_type == "cuda":
        return {"block_m": [64, 128], "block_n": [32, 64, 128], "num_warps": [4, 8], "num_stages": [1, 2, 3, 4]}
    return {"block_m": [16], "block_n": [16], "num_warps": [4], "num_stages": [1, 2]}


def valid(p: dict, device_type: str) -> bool:
    return p["block_n"] <= p["block_m"] or device_type != "cuda"


def label(p: dict) -> str:
    return f"m{p['block_m']} n{p['block_n']} w{p['num_warps']} s{p['num_stages']}"


SOURCE = '''"""Triton causal flash attention from the search template: {label}."""
import math
import os

import torch
import triton
import triton.language as tl
from torch import nn

BLOCK_M, BLOCK_N = {block_m}, {block_n}
NUM_WARPS, NUM_STAGES = {num_warps}, {num_stages}
# Triton's CPU interpreter gets bf16 dot products wrong: there, and only there, upcast to float32 first.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def flash_attention_kernel(q_ptr, k_ptr, v_ptr, o_ptr, seq, qk_scale, HEAD_DIM: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr):
    start_m = tl.program_id(0) * BLOCK_M
    base = tl.program_id(1).to(tl.int64) * seq * HEAD_DIM            # (batch, head), contiguous (s, d) rows
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=offs_m[:, None] < seq, other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
    m_i = tl.full([BLOCK_M], -float("inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    for start_n in range(0, tl.minimum(start_m + BLOCK_M, seq), BLOCK_N):   # nothing above the diagonal
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_mask = offs_n[:, None] < seq
        k = tl.load(k_ptr + base + offs_n[:, None] * HEAD_DIM + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + base + offs_n[:, None] * HEAD_DIM + offs_d[None, :], mask=kv_mask, other=0.0)
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = s * qk_scale                                               # log2(e) / sqrt(d): exp2 below
        keep = (offs_n[None, :] <= offs_m[:, None]) & (offs_n[None, :] < seq)
        s = tl.where(keep, s, -float("inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if IEEE:
            acc = tl.dot(p, v, acc * alpha[:, None], input_precision="ieee")
        else:
            acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
    o = acc / l_i[:, None]
    tl.store(o_ptr + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :], o.to(o_ptr.dtype.element_ty),
             mask=offs_m[:, None] < seq)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        b, h, s, d = q.shape
        o = torch.empty_like(q)
        grid = (triton.cdiv(s, BLOCK_M), b * h)
        flash_attention_kernel[grid](q, k, v, o, s, 1.4426950408889634 / math.sqrt(d), HEAD_DIM=d,
                                     BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, IEEE=q.dtype == torch.float32,
                                     UPCAST=INTERPRET and q.dtype != torch.float32,
                                     num_warps=NUM_WARPS, num_stages=NUM_STAGES)
        return o
'''


def render(params: dict, problem) -> str:
    return SOURCE.format(label=label(params), **params)
