"""Indexing a 2D problem: a 2D grid vs a flattened 1D grid-stride loop, against PyTorch eager.

out[r, c] = x[r, c] * row_scale[r] + col_bias[c] on a row-major matrix. PyTorch eager runs it as two
kernels (a multiply, then an add) with a full-size temporary between them, so it reads and writes the
matrix twice. Either hand-written kernel does it in one pass. The 2D grid hands each thread its (row,
column) directly; the 1D grid-stride loop covers the matrix as a flat array and recovers (row, column)
with a division, which costs integer instructions but no memory traffic.
"""
import torch

from ch6.kernels import ext
from harness import Example, Requires, main

SHAPES = {"tiny": (64, 96), "small": (1024, 2048), "full": (4096, 8192)}  # full: 128 MB in, 128 MB out


def setup(size, device, seed):
    rows, cols = SHAPES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(rows, cols, device=device, generator=g),
            "row_scale": torch.randn(rows, device=device, generator=g),
            "col_bias": torch.randn(cols, device=device, generator=g)}


def eager(x):
    return x["x"] * x["row_scale"][:, None] + x["col_bias"]


EXAMPLE = Example(
    title="Row scale + column bias: 2D grid vs 1D grid-stride vs eager",
    setup=setup,
    baseline=eager,
    baseline_name="torch_eager",
    optimized={
        "grid_2d": lambda x: ext().affine_2d(x["x"], x["row_scale"], x["col_bias"]),
        "grid_stride_1d": lambda x: ext().affine_1d_grid_stride(x["x"], x["row_scale"], x["col_bias"]),
    },
    # The least any version must move: read x, the scales and the biases once, write out once.
    bytes_moved=lambda x: 4 * (2 * x["x"].numel() + x["row_scale"].numel() + x["col_bias"].numel()),
    flops=lambda x: 2 * x["x"].numel(),
    flops_dtype="fp32",
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
