"""SAXPY (out = a*x + y): PyTorch eager vs grid-stride kernels with scalar and float4 accesses.

Eager `a * x + y` is two kernels: the multiply writes a full-size temporary that the add reads back,
five words of traffic per element where three would do. `torch.add(y, x, alpha=a)` is PyTorch's own
one-kernel form. The hand-written kernels are one grid-stride pass; the float4 version moves 16 bytes
per load and store instruction, a quarter of the instructions of the scalar version for the same bytes.
All three one-pass versions should sit near the copy bandwidth; the roofline puts SAXPY (2 flops per
12 bytes) far on the memory-bound side.
"""
import torch

from ch6.kernels import ext
from harness import Example, Requires, main

N = {"tiny": 4099, "small": 1 << 22, "full": 1 << 25}  # full: three 128 MB vectors; tiny has a ragged tail


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    a = float(torch.randn(1, generator=torch.Generator().manual_seed(seed)))
    return {"a": a, "x": torch.randn(N[size], device=device, generator=g),
            "y": torch.randn(N[size], device=device, generator=g)}


EXAMPLE = Example(
    title="SAXPY: eager (2 kernels) vs fused grid-stride kernels, scalar and float4",
    setup=setup,
    baseline=lambda x: x["a"] * x["x"] + x["y"],
    baseline_name="torch_eager",
    optimized={
        "torch_add_alpha": lambda x: torch.add(x["y"], x["x"], alpha=x["a"]),
        "grid_stride_scalar": lambda x: ext().saxpy_scalar(x["a"], x["x"], x["y"]),
        "grid_stride_float4": lambda x: ext().saxpy_float4(x["a"], x["x"], x["y"]),
    },
    bytes_moved=lambda x: 3 * 4 * x["x"].numel(),  # the fused minimum: read x and y, write out
    flops=lambda x: 2 * x["x"].numel(),
    flops_dtype="fp32",
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
