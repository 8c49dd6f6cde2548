"""Search template: RMSNorm, and LayerNorm fused with the residual add, in Triton, a whole row per step.

RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w. Residual + LayerNorm: h = x + residual is formed in
registers, stored once (the block's residual stream) and normalised without being read back: the
unfused PyTorch version writes h, then reads it again. The variance is the mean of (h - mean)^2 (not
E[h^2] - E[h]^2, which cancels on shifted inputs). Floors: 2 (RMSNorm) and 4 (fused) tensor passes
over HBM. Knobs: num_warps and rows per program.
"""
from __future__ import annotations

# The same knobs as the layernorm template (warps, rows per program): one row-normalising kernel shape.
from ch20.generators.templates.layernorm import PLAIN, label, space, valid  # noqa: F401 (the template interface)

RMSNORM = '''"""Triton RMSNorm from the search template: {label}."""
import torch
import triton
import triton.language as tl
from torch import nn

EPS = 1e-6
NUM_WARPS = {num_warps}
ROWS = {rows}


@triton.jit
def rmsnorm_kernel(x_ptr, w_ptr, y_ptr, n_rows, n_cols, stride, eps, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    col_ok = cols < n_cols
    w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    for r in range(ROWS):
        row = tl.program_id(0) * ROWS + r
        mask = col_ok & (row < n_rows)
        x = tl.load(x_ptr + row.to(tl.int64) * stride + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
        tl.store(y_ptr + row.to(tl.int64) * stride + cols, (x * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(hidden))   # drawn in the reference's order

    def forward(self, x):
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        y = torch.empty_like(x2)
        n_rows, n_cols = x2.shape
        rmsnorm_kernel[(triton.cdiv(n_rows, ROWS),)](x2, self.weight, y, n_rows, n_cols, x2.stride(0), EPS,
                                                     BLOCK=triton.next_power_of_2(n_cols), ROWS=ROWS,
                                                     num_warps=NUM_WARPS)
        return y.reshape(x.shape)
'''

RESIDUAL_LAYERNORM = '''"""Triton residual add + LayerNorm from the search template: {label}."""
import torch
import triton
import triton.language as tl
from torch import nn

EPS = 1e-5
NUM_WARPS = {num_warps}
ROWS = {rows}


@triton.jit
def residual_layernorm_kernel(x_ptr, res_ptr, w_ptr, b_ptr, y_ptr, h_ptr, n_rows, n_cols, stride, eps,
                              BLOCK: tl.constexpr, ROWS: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    col_ok = cols < n_cols
    w = tl.load(w_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
    for r in range(ROWS):
        row = tl.program_id(0) * ROWS + r
        mask = col_ok & (row < n_rows)
        off = row.to(tl.int64) * stride + cols
        h = tl.load(x_ptr + off, mask=mask, other=0.0) + tl.load(res_ptr + off, mask=mask, other=0.0)
        tl.store(h_ptr + off, h, mask=mask)            # the residual stream, rounded as the reference rounds it
        hf = h.to(tl.float32)
        mean = tl.sum(hf, axis=0) / n_cols
        d = tl.where(col_ok, hf - mean, 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(d * d, axis=0) / n_cols + eps)
        tl.store(y_ptr + off, (d * rstd * w + b).to(y_ptr.dtype.element_ty), mask=mask)


class ModelNew(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(hidden))   # drawn in the reference's order
        self.bias = nn.Parameter(0.1 * torch.randn(hidden))

    def forward(self, x, residual):
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        r2 = residual.reshape(-1, x.shape[-1]).contiguous()
        y, h = torch.empty_like(x2), torch.empty_like(x2)
        n_rows, n_cols = x2.shape
        residual_layernorm_kernel[(triton.cdiv(n_rows, ROWS),)](x2, r2, self.weight, self.bias, y, h, n_rows, n_cols,
                                                                x2.stride(0), EPS,
                                                                BLOCK=triton.next_power_of_2(n_cols), ROWS=ROWS,
                                                                num_warps=NUM_WARPS)
        return y.reshape(x.shape), h.reshape(x.shape)
'''


def render(params: dict, problem) -> str:
    source = RESIDUAL_LAYERNORM if problem.family == "fused_norm" else RMSNORM
    return source.format(label=label(params), **params)
