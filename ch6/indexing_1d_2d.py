"""Indexing a 2D problem: a 2D grid vs a flattened 1D grid-stride loop vs a 2D grid with float4 rows.

out[r, c] = x[r, c] * row_scale[r] + col_bias[c] on a row-major matrix. The baseline is the kernel one
writes first: a 2D grid, one thread per element, each thread handed its (row, column) directly. The 1D
grid-stride loop covers the matrix as a flat array and recovers (row, column) with a division: integer
instructions, no extra memory traffic, and any grid covers any size; it still moves one 4-byte word
per thread, so it is labelled as a teaching variant. Both scalar kernels keep too few bytes in flight
per SM to reach the copy bandwidth. `grid_2d_float4` keeps the 2D grid, moves 16 bytes per access
along the row, and has each thread load four rows before it stores any (64 bytes in flight per
thread): that is the kernel to copy. `torch_eager` is PyTorch's `x * s[:, None] + b`, for reference:
two kernels with a full-size temporary between them, so it moves the matrix twice.

Bound: full size reads 128 MiB and writes 128 MiB (plus 48 KiB of scales and biases): about 64 us at
the H200's measured 4.2 TB/s copy bandwidth; 2 flops per element is nothing against the FP32 ceiling.
"""
import torch

from ch6.kernels import ext
from harness import Example, Requires, Variant, main

SHAPES = {"tiny": (64, 96), "small": (1024, 2048), "full": (4096, 8192)}  # full: 128 MiB in, 128 MiB out


def setup(size, device, seed):
    rows, cols = SHAPES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(rows, cols, device=device, generator=g),
            "row_scale": torch.randn(rows, device=device, generator=g),
            "col_bias": torch.randn(cols, device=device, generator=g)}


def eager(x):
    return x["x"] * x["row_scale"][:, None] + x["col_bias"]


EXAMPLE = Example(
    title="Row scale + column bias: 2D grid vs 1D grid-stride vs 2D grid with float4 rows",
    setup=setup,
    baseline=lambda x: ext().affine_2d(x["x"], x["row_scale"], x["col_bias"]),
    baseline_name="grid_2d",
    optimized={
        "grid_stride_1d": Variant(
            lambda x: ext().affine_1d_grid_stride(x["x"], x["row_scale"], x["col_bias"]), teaching=True,
            note="shows flattened indexing; one 4-byte word per thread is too little in flight for the copy bandwidth"),
        "grid_2d_float4": lambda x: ext().affine_2d_float4(x["x"], x["row_scale"], x["col_bias"]),
    },
    references={"torch_eager": eager},
    # The least any version must move: read x, the scales and the biases once, write out once.
    bytes_moved=lambda x: 4 * (2 * x["x"].numel() + x["row_scale"].numel() + x["col_bias"].numel()),
    flops=lambda x: 2 * x["x"].numel(),
    flops_dtype="fp32",
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
