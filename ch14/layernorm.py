"""LayerNorm forward, fused: the row read once into registers, two passes over it there, written once.

`y = (x - mean) / sqrt(var + eps) * w + b` over the last dimension, bf16 in and out, fp32 inside. The
unfused PyTorch one writes first (upcast, mean, centre, square, mean, rsqrt, scale, shift, downcast)
launches about ten kernels and moves each element many times; the fused kernel gives a program one
row, computes the mean, then the variance of the centred values (two passes over registers, not
E[x^2] - E[x]^2, which cancels catastrophically when the mean is large next to the spread), and writes
the normalized row once.

Bound: full size is 32768 rows x 4096 bf16, 256 MiB read + 256 MiB written (w and b are 16 KiB):
about 0.13 ms at the H200's measured 4.2 TB/s copy bandwidth. Goal: >= 0.85 of copy bandwidth.

Distributions: `normal`; `shifted` (a mean of 64 next to a spread of 1: the single-pass formula
would lose the variance); `large` (magnitudes of 1e3); `constant_rows` (variance 0: the output is
exactly b, and eps is all that keeps 1/sqrt(var + eps) finite).
"""
import torch  # noqa: I001 (ch14.triton_runtime must come before triton)
import torch.nn.functional as F

from ch14.triton_runtime import TRITON  # before triton: it decides compiled or interpreted
import triton
import triton.language as tl
from harness import Example, Variant, main

SHAPES = {"tiny": (16, 100), "small": (4096, 1024), "full": (32768, 4096)}
EPS = 1e-5


def setup(size, device, seed, dist="normal"):
    rows, cols = SHAPES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(rows, cols, device=device, generator=g)
    if dist == "shifted":
        x += 64.0
    elif dist == "large":
        x *= 1e3
    elif dist == "constant_rows":
        x[0::2] = x[0::2, :1]                             # every other row one repeated value
    w = 1.0 + 0.1 * torch.randn(cols, device=device, generator=g)
    b = 0.1 * torch.randn(cols, device=device, generator=g)
    bf16 = torch.bfloat16
    return {"x": x.to(bf16), "w": w.to(bf16), "b": b.to(bf16)}


@triton.jit
def layernorm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, n_cols, stride_x, stride_y, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / n_cols
    centred = tl.where(mask, x - mean, 0.0)               # masked lanes must not add (0 - mean)^2
    var = tl.sum(centred * centred, axis=0) / n_cols
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(w_ptr + cols, mask=mask).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=mask).to(tl.float32)
    y = centred * rstd * w + b
    tl.store(y_ptr + row * stride_y + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def fused_layernorm(inputs):
    x, w, b = inputs["x"], inputs["w"], inputs["b"]
    rows, cols = x.shape
    y = torch.empty_like(x)
    block = triton.next_power_of_2(cols)
    num_warps = 4 if block <= 1024 else 8 if block <= 8192 else 16
    layernorm_kernel[(rows,)](x, w, b, y, cols, x.stride(0), y.stride(0), EPS, BLOCK=block, num_warps=num_warps)
    return y


def unfused_layernorm(inputs):
    x = inputs["x"].float()
    mean = x.mean(dim=-1, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(dim=-1, keepdim=True)
    y = centred * torch.rsqrt(var + EPS) * inputs["w"].float() + inputs["b"].float()
    return y.to(inputs["x"].dtype)


def torch_layer_norm(inputs):
    x = inputs["x"]
    return F.layer_norm(x, (x.shape[-1],), inputs["w"], inputs["b"], EPS)


EXAMPLE = Example(
    title="LayerNorm forward: unfused PyTorch vs one fused Triton kernel (two passes in registers)",
    setup=setup,
    baseline=unfused_layernorm,
    baseline_name="unfused_torch",
    optimized={"triton_fused": Variant(fused_layernorm, requires=TRITON)},
    references={"torch_layer_norm": torch_layer_norm},
    # x read, y written, w and b read once
    bytes_moved=lambda inputs: 2 * inputs["x"].numel() * 2 + 2 * inputs["w"].numel() * 2,
    distributions=("normal", "shifted", "large", "constant_rows"),
)

if __name__ == "__main__":
    main(EXAMPLE)
