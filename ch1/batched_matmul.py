"""A loop of small matrix products vs one batched product.

Forty independent 256x256 products (per-head or per-expert work, say) written as a Python loop launch
forty small kernels, each too small to fill the GPU, and pay forty launches. `torch.bmm` does the same
arithmetic in one launch that spreads all forty over the chip.
"""
import torch

from harness import Example, main

# (batch, m, n, k): the batch of 40 is the book's; tiny keeps the CPU run in milliseconds.
SHAPES = {"tiny": (40, 32, 32, 32), "small": (40, 128, 128, 128), "full": (40, 256, 256, 256)}


def setup(size, device, seed):
    b, m, n, k = SHAPES[size]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    g = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(b, m, k, device=device, generator=g).to(dtype)
    w = torch.randn(b, k, n, device=device, generator=g).to(dtype)
    return {"a": a, "b": w}


def loop_of_matmuls(x):
    a, b = x["a"], x["b"]
    out = torch.empty(a.shape[0], a.shape[1], b.shape[2], device=a.device, dtype=a.dtype)
    for i in range(a.shape[0]):
        torch.matmul(a[i], b[i], out=out[i])
    return out


def batched(x):
    return torch.bmm(x["a"], x["b"])


# no edge distributions: both variants are PyTorch's own GEMMs (mm in a loop, one bmm) on the same values;
# no input separates them.
EXAMPLE = Example(
    title="Loop of small matmuls vs one batched matmul",
    setup=setup,
    baseline=loop_of_matmuls,
    optimized={"bmm": batched},
    flops=lambda x: 2 * x["a"].shape[0] * x["a"].shape[1] * x["a"].shape[2] * x["b"].shape[2],
    flops_dtype="bf16",
    bytes_moved=lambda x: (x["a"].numel() + x["b"].numel() + x["a"].shape[0] * x["a"].shape[1] * x["b"].shape[2])
    * x["a"].element_size(),
)

if __name__ == "__main__":
    main(EXAMPLE)
