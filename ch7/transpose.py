"""Matrix transpose: naive vs shared-memory tiled vs tiled with padding (no bank conflicts).

The naive kernel reads rows (coalesced) and writes columns (every store scattered). The tiled kernel
stages a 32x32 tile in shared memory so that both the global reads and the global writes run along
rows; but reading a column of a [32][32] float tile puts all 32 lanes in one shared-memory bank, a
32-way conflict. One float of padding per tile row ([32][33]) moves each row to the next bank and
removes it. `torch_contiguous` is PyTorch's `x.t().contiguous()`, for reference.
"""
import torch

from ch7.kernels import ext
from harness import Example, Requires, main

SHAPES = {"tiny": (70, 45), "small": (2048, 1024), "full": (8192, 4096)}  # full: 128 MB; tiny: ragged tiles


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(*SHAPES[size], device=device, generator=g)}


EXAMPLE = Example(
    title="Transpose: naive vs shared-memory tiled vs tiled + padded",
    setup=setup,
    baseline=lambda x: ext().transpose_naive(x["x"]),
    baseline_name="naive",
    optimized={
        "tiled": lambda x: ext().transpose_tiled(x["x"]),
        "tiled_padded": lambda x: ext().transpose_tiled_padded(x["x"]),
        "torch_contiguous": lambda x: x["x"].t().contiguous(),
    },
    bytes_moved=lambda x: 2 * 4 * x["x"].numel(),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
