"""Search template: SwiGLU, silu(x @ W1^T) * (x @ W3^T), as one Triton matmul with two accumulators.

One program computes a BLOCK_M x BLOCK_N tile of both products from the same loaded tile of x, then
applies silu(a) * b in registers and stores once: the two (tokens, hidden) intermediates PyTorch writes
and reads back never exist. Bound: 2 * 2 * tokens * dim * hidden FLOPs at the tensor-core peak (bf16 at
the full size). Knobs: the block sizes, GROUP_M (L2 reuse of x's rows), num_warps, num_stages.
"""
from __future__ import annotations

PLAIN = {"block_m": 64, "block_n": 64, "block_k": 32, "group_m": 1, "num_warps": 4, "num_stages": 2}
SMEM_LIMIT = 220 * 1024


def space(device_type: str) -> dict[str, list]:
    if device_type == "cuda":
        return {"block_m": [64, 128], "block_n": [64, 128], "block_k": [32, 64], "group_m": [1, 8],
                "num_warps": [4, 8], "num_stages": [2, 3, 4]}
    return {"block_m": [16, 32], "block_n": [16, 32], "block_k": [16, 32], "group_m": [1, 2],
            "num_warps": [4], "num_stages": [2]}


def valid(p: dict, device_type: str) -> bool:
    """Three tiles in flight per stage (x, W1, W3) and two accumulators per thread."""
    smem = (p["block_m"] * p["block_k"] + 2 * p["block_k"] * p["block_n"]) * 2 * p["num_stages"]
    acc_per_thread = 2 * p["block_m"] * p["block_n"] / (32 * p["num_warps"])
    return smem <= SMEM_LIMIT and acc_per_thread <= 128


def label(p: dict) -> str:
    return f"{p['block_m']}x{p['block_n']}x{p['block_k']} g{p['group_m']} w{p['num_warps']} s{p['num_stages']}"


SOURCE = '''"""Triton SwiGLU from the search template: {label}."""
import os

import torch
import triton
import triton.language as tl
from torch import nn

BLOCK_M, BLOCK_N, BLOCK_K = {block_m}, {block_n}, {block_k}
GROUP_M = {group_m}
NUM_WARPS, NUM_STAGES = {num_warps}, {num_stages}
# Triton's CPU interpreter gets bf16 dot products wrong: there, and only there, upcast to float32 first.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def swiglu_kernel(x_ptr, w1_ptr, w3_ptr, y_ptr, M, N, K, stride_xm, stride_wn, stride_ym,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                  IEEE: tl.constexpr, UPCAST: tl.constexpr):
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :]
    w_off = offs_n[None, :] * stride_wn + offs_k[:, None]          # W^T[k, n] = W[n, k]: no transposed copy
    acc1 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc3 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K
        x = tl.load(x_ptrs, mask=(offs_m[:, None] < M) & (offs_k[None, :] < k_left), other=0.0)
        w_mask = (offs_k[:, None] < k_left) & (offs_n[None, :] < N)
        w1 = tl.load(w1_ptr + w_off, mask=w_mask, other=0.0)
        w3 = tl.load(w3_ptr + w_off, mask=w_mask, other=0.0)
        if UPCAST:
            x = x.to(tl.float32)
            w1 = w1.to(tl.float32)
            w3 = w3.to(tl.float32)
        if IEEE:  # float32 inputs: full precision, not TF32, to match torch's float32 matmul
            acc1 = tl.dot(x, w1, acc1, input_precision="ieee")
            acc3 = tl.dot(x, w3, acc3, input_precision="ieee")
        else:
            acc1 = tl.dot(x, w1, acc1)
            acc3 = tl.dot(x, w3, acc3)
        x_ptrs += BLOCK_K
        w_off += BLOCK_K
    # the reference rounds each product to its dtype before the activation: so do we
    a = acc1.to(y_ptr.dtype.element_ty).to(tl.float32)
    b = acc3.to(y_ptr.dtype.element_ty).to(tl.float32)
    y = (a * tl.sigmoid(a)).to(y_ptr.dtype.element_ty).to(tl.float32) * b
    tl.store(y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :], y.to(y_ptr.dtype.element_ty),
             mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


class ModelNew(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)   # parameters drawn exactly as the reference's
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        w1, w3 = self.w1.weight.contiguous(), self.w3.weight.contiguous()
        m, k = x2.shape
        n = w1.shape[0]
        y = torch.empty((m, n), device=x.device, dtype=x.dtype)
        grid = (triton.cdiv(m, BLOCK_M) * triton.cdiv(n, BLOCK_N),)
        swiglu_kernel[grid](x2, w1, w3, y, m, n, k, x2.stride(0), w1.stride(0), y.stride(0),
                            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
                            IEEE=x.dtype == torch.float32, UPCAST=INTERPRET and x.dtype != torch.float32,
                            num_warps=NUM_WARPS, num_stages=NUM_STAGES)
        return y.reshape(*x.shape[:-1], n)
'''


def render(params: dict, problem) -> str:
    return SOURCE.format(label=label(params), **params)
