"""SAXPY (out = a*x + y): grid-stride kernels with scalar and float4 accesses, against PyTorch.

The baseline is the grid-stride kernel one writes first: one float per iteration, 4-byte loads and
stores. The float4 version moves 16 bytes per load and store instruction, a quarter of the memory
instructions for the same bytes, and four times the bytes in flight per thread. SAXPY does 2 flops per
12 bytes, far on the memory-bound side of the roofline, so the figure to look at is the fraction of
the copy bandwidth. Two PyTorch versions are shown for reference: eager `a * x + y` is two kernels (the
multiply writes a full-size temporary that the add reads back: five words of traffic per element where
three would do), and `torch.add(y, x, alpha=a)` is PyTorch's own one-kernel form.

Bound: full size reads two 128 MiB vectors and writes one: about 95 us at the H200's measured 4.2 TB/s
copy bandwidth.
"""
import torch

from ch6.kernels import ext
from harness import Example, Requires, main

N = {"tiny": 4099, "small": 1 << 22, "full": 1 << 25}  # full: three 128 MiB vectors; tiny has a ragged tail


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    a = float(torch.randn(1, generator=torch.Generator().manual_seed(seed)))
    return {"a": a, "x": torch.randn(N[size], device=device, generator=g),
            "y": torch.randn(N[size], device=device, generator=g)}


EXAMPLE = Example(
    title="SAXPY: grid-stride kernels, scalar vs float4 (PyTorch eager and torch.add for reference)",
    setup=setup,
    baseline=lambda x: ext().saxpy_scalar(x["a"], x["x"], x["y"]),
    baseline_name="grid_stride_scalar",
    optimized={"grid_stride_float4": lambda x: ext().saxpy_float4(x["a"], x["x"], x["y"])},
    references={
        "torch_eager": lambda x: x["a"] * x["x"] + x["y"],
        "torch_add_alpha": lambda x: torch.add(x["y"], x["x"], alpha=x["a"]),
    },
    bytes_moved=lambda x: 3 * 4 * x["x"].numel(),  # the fused minimum: read x and y, write out
    flops=lambda x: 2 * x["x"].numel(),
    flops_dtype="fp32",
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
