"""FP8 linear layers for training, written here (a `Float8Linear` in the manner of torchao's): scaling, casting,
`torch._scaled_mm`, and the backward's two GEMMs.

A linear layer's training step is three GEMMs: the forward `y = x W^T`, and in the backward
`grad_x = grad_y W` and `grad_W = grad_y^T x`. Each runs here on FP8 operands: every operand is scaled so its
largest magnitude lands at the FP8 type's largest finite value, cast, and multiplied by `torch._scaled_mm`
on FP8 tensor cores (twice the bf16 rate on Hopper), which applies the scales to the fp32 accumulator and
writes bf16. Two recipes:
- `tensorwise`: one scale per tensor (amax over the whole tensor); the forward's operands in e4m3 (3 mantissa
  bits, max 448), gradients in e5m2 (2 mantissa bits, max 57344: gradients need range more than precision);
- `rowwise`: one scale per row of the left operand and per column of the right, along the GEMM's reduction
  dimension (an outlier spoils only its own row); every operand in e4m3, as `_scaled_mm`'s row-wise mode wants.
  Each GEMM reduces over a different dimension, so the backward re-quantizes x and W along another axis:
  they are saved in bf16, not FP8.

The scales are computed from the current tensor ("dynamic scaling"): one amax reduction and one cast per
operand per GEMM: element-wise passes that eager PyTorch runs as separate kernels (torch.compile fuses them).
Without FP8 tensor cores (a CPU, a GPU before sm_89), `fp8_mm` emulates: the same quantized values,
dequantized and multiplied in fp32: the same numerics up to accumulation order, none of the speed.

Bound: each GEMM's FLOPs at ~2x bf16's rate (H200 dense: ~1979 vs ~989 TFLOP/s), plus the casts: per GEMM
operand a read of bf16 (amax), a read and a write of FP8 (cast): ~5 bytes per element at ~4.5 TB/s.
"""
from __future__ import annotations

import torch
from torch import nn

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
RECIPES = {"tensorwise": (E4M3, E5M2), "rowwise": (E4M3, E4M3)}  # (forward operands, gradients)


def fp8_max(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).max


def quantize(t: torch.Tensor, dtype: torch.dtype, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(t / scale cast to `dtype`, scale): scale = amax / max finite of `dtype`, per tensor (dim None) or with
    the amax taken along `dim` (one scale per slice across it, keepdim). The scale dequantizes: t ~ q * scale."""
    inf = float("inf")  # the max-norm is amax(|t|) in one kernel, accumulated in fp32
    amax = (torch.linalg.vector_norm(t.detach(), inf, dtype=torch.float32) if dim is None else
            torch.linalg.vector_norm(t.detach(), inf, dim=dim, keepdim=True, dtype=torch.float32))
    scale = amax.clamp(min=1e-12) / fp8_max(dtype)  # an all-zero slice keeps a finite scale (q is 0 anyway)
    q = (t.float() / scale).clamp(-fp8_max(dtype), fp8_max(dtype)).to(dtype)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale


def has_fp8_mm(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


# Decided once, at import: a plain bool is what torch.compile can trace past without a device query.
FP8_ON_CUDA = torch.cuda.is_available() and has_fp8_mm(torch.device("cuda"))


def fp8_mm(a: torch.Tensor, b: torch.Tensor, a_dtype: torch.dtype, b_dtype: torch.dtype, rowwise: bool,
           out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """a (M, K) @ b (K, N) with both operands quantized along K (the reduction dimension)."""
    out_dtype = out_dtype or a.dtype
    qa, sa = quantize(a, a_dtype, dim=1 if rowwise else None)          # (M, 1) or scalar
    qbt, sbt = quantize(b.t(), b_dtype, dim=1 if rowwise else None)    # b^T (N, K): scale (N, 1) or scalar
    if a.is_cuda and FP8_ON_CUDA:
        # _scaled_mm wants the left operand row-major and the right one column-major: b^T contiguous, seen as b.
        sb = sbt.reshape(1, -1) if rowwise else sbt
        return torch._scaled_mm(qa.contiguous(), qbt.contiguous().t(), scale_a=sa, scale_b=sb, out_dtype=out_dtype)
    return (dequantize(qa, sa) @ dequantize(qbt, sbt).t()).to(out_dtype)


class _Fp8Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, recipe):
        ctx.save_for_backward(x, weight)
        ctx.recipe = recipe
        fwd, _ = RECIPES[recipe]
        return fp8_mm(x, weight.t(), fwd, fwd, recipe == "rowwise")                      # x W^T

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        fwd, grad = RECIPES[ctx.recipe]
        rowwise = ctx.recipe == "rowwise"
        grad_y = grad_y.contiguous()
        grad_x = fp8_mm(grad_y, weight, grad, fwd, rowwise)                             # (M, N) @ (N, K)
        grad_w = fp8_mm(grad_y.t(), x, grad, fwd, rowwise, out_dtype=weight.dtype)      # (N, M) @ (M, K)
        return grad_x, grad_w, None


class Float8Linear(nn.Linear):
    """nn.Linear (no bias) whose three GEMMs run in FP8 with dynamic scaling; weights stay in bf16."""

    recipe: str = "tensorwise"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _Fp8Linear.apply(x.reshape(-1, x.shape[-1]), self.weight, self.recipe)
        return y.reshape(*x.shape[:-1], y.shape[-1])


def convert_to_float8(model: nn.Module, recipe: str, skip: tuple[str, ...] = ("output",)) -> int:
    """Swap every bias-free nn.Linear (dims multiples of 16, as _scaled_mm needs) for a Float8Linear, in place,
    except the modules named in `skip` (the LM head stays in bf16, as is usual). Returns how many were swapped."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}")
    swapped = 0
    for name, module in model.named_modules():
        if (type(module) is nn.Linear and module.bias is None and name not in skip
                and module.in_features % 16 == 0 and module.out_features % 16 == 0):
            module.__class__ = Float8Linear  # same parameters, new forward
            module.recipe = recipe
            swapped += 1
    return swapped
