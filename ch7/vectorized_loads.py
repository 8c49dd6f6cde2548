"""Scalar vs 16-byte vectorized loads, on bf16 data.

`out = x * alpha` on a bf16 tensor, one element per thread (2-byte loads and stores: 64 bytes per warp
instruction) vs eight elements per thread through one 16-byte load and store (512 bytes per warp
instruction). Both are coalesced; the vectorized kernel issues an eighth of the memory instructions and
keeps more bytes in flight per thread, which is what a memory-bound kernel needs to approach the copy
bandwidth. `torch_eager` is PyTorch's own `x * alpha`, for reference.

Bound: full size reads 128 MiB and writes 128 MiB: about 64 us at the H200's measured 4.2 TB/s copy
bandwidth.
"""
import torch

from ch7.kernels import ext
from harness import Example, Requires, main

N = {"tiny": 8 * 1000 + 5, "small": 1 << 23, "full": 1 << 26}  # full: 128 MiB of bf16 each way; tiny: ragged tail


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    alpha = 0.5 + float(torch.rand(1, generator=torch.Generator().manual_seed(seed)))
    return {"x": torch.randn(N[size], device=device, generator=g).to(torch.bfloat16), "alpha": alpha}


EXAMPLE = Example(
    title="bf16 scale: scalar 2-byte loads vs 16-byte vector loads",
    setup=setup,
    baseline=lambda x: ext().scale_bf16_scalar(x["x"], x["alpha"]),
    baseline_name="scalar_2B",
    optimized={"vector_16B": lambda x: ext().scale_bf16_vec16(x["x"], x["alpha"])},
    # PyTorch computes in fp32 and rounds once, as the kernels do.
    references={"torch_eager": lambda x: x["x"] * x["alpha"]},
    bytes_moved=lambda x: 2 * 2 * x["x"].numel(),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
