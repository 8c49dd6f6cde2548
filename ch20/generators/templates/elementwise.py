"""Search template: one-pass elementwise kernels in Triton (axpy, GELU, bias + GELU).

Each program loads BLOCK contiguous elements, computes in float32 registers and stores once: the floor
is one read of every input and one write of the output (bytes_moved / HBM bandwidth). The bias of
bias + GELU is indexed by column (offset % hidden), so the fusion saves the intermediate x + bias tensor.
GELU is the exact erf form, as F.gelu's default. Knobs: BLOCK (elements per program) and num_warps.
"""
from __future__ import annotations

PLAIN = {"block": 1024, "num_warps": 4}


def space(device_type: str) -> dict[str, list]:
    if device_type == "cuda":
        return {"block": [256, 512, 1024, 2048, 4096, 8192], "num_warps": [1, 2, 4, 8, 16]}
    return {"block": [64, 256], "num_warps": [1, 4]}


def valid(p: dict, device_type: str) -> bool:
    per_thread = p["block"] / (32 * p["num_warps"])
    return device_type != "cuda" or 1 <= per_thread <= 64   # at least one element per thread, few registers


def label(p: dict) -> str:
    return f"b{p['block']} w{p['num_warps']}"


# per family: (kernel body computing r from x, extra kernel arguments, ModelNew)
OPS = {
    "elementwise": ("""    y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    r = alpha * x + y""", '''

class ModelNew(nn.Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x, y):
        return launch(x, y=y, alpha=self.alpha)
'''),
    "activation": ("""    r = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))   # exact GELU""", '''

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return launch(x)
'''),
    "activation_fusion": ("""    x += tl.load(b_ptr + offs % n_cols, mask=mask, other=0.0).to(tl.float32)   # bias by column
    r = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))""", '''

class ModelNew(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(hidden))   # drawn in the reference's order

    def forward(self, x):
        return launch(x, bias=self.bias)
'''),
}

SOURCE = '''"""Triton elementwise kernel from the search template: {label}."""
import torch
import triton
import triton.language as tl
from torch import nn

BLOCK = {block}
NUM_WARPS = {num_warps}


@triton.jit
def elementwise_kernel(x_ptr, y_ptr, b_ptr, out_ptr, n, n_cols, alpha, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
{body}
    tl.store(out_ptr + offs, r.to(out_ptr.dtype.element_ty), mask=mask)


def launch(x, y=None, bias=None, alpha=1.0):
    x = x.contiguous()
    out = torch.empty_like(x)
    n = x.numel()
    elementwise_kernel[(triton.cdiv(n, BLOCK),)](x, x if y is None else y.contiguous(), x if bias is None else bias,
                                                 out, n, x.shape[-1], alpha, BLOCK=BLOCK, num_warps=NUM_WARPS)
    return out
'''


def render(params: dict, problem) -> str:
    body, model = OPS[problem.family]
    return SOURCE.format(label=label(params), body=body, **params) + model
