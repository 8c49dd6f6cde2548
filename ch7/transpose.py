"""Matrix transpose: naive vs shared-memory tiled vs tiled with padding vs padded with 16-byte accesses.

The naive kernel reads rows (coalesced) and writes columns (every store scattered). The tiled kernel
stages a 32x32 tile in shared memory so that both the global reads and the global writes run along
rows; but reading a column of a [32][32] float tile puts all 32 lanes in one shared-memory bank, a
32-way conflict. One float of padding per tile row ([32][33]) moves each row to the next bank and
removes it. These two are a teaching pair, labelled so: the same scalar kernel with and without the
padding, to show the bank conflict alone. The float4 kernel keeps the padded tile and moves 16 bytes
per global load and store: a thread reads four neighbouring floats of a row, and writes four
neighbouring floats of an output row gathered from a column of the tile (the padding keeps those reads
conflict-free too); with fewer, wider accesses it keeps more bytes in flight per thread. That is the
kernel to copy. `torch_contiguous` is PyTorch's `x.t().contiguous()`, for reference.

Bound: full size reads 128 MiB and writes 128 MiB: about 64 us at the H200's measured 4.2 TB/s copy
bandwidth.

Where it stands on the H200 (git 5a3d2e0): tiled_float4 reaches 83% of the copy bandwidth in the harness (86% in
scripts/tune_memory_kernels.py, which re-reads the same buffers), against the 85% goal: missed, and shown as
missed. Not yet measured: why. A 32 x 32 tile moves 4 KiB between two barriers, fewer bytes in flight per SM than
the copy kernel keeps; a 64 x 64 tile or two tiles in flight per block is the next thing to try.
"""
import torch

from ch7.kernels import ext
from harness import Example, Requires, Variant, main

SHAPES = {"tiny": (70, 45), "small": (2048, 1024), "full": (8192, 4096)}  # full: 128 MiB; tiny: ragged tiles


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(*SHAPES[size], device=device, generator=g)}


EXAMPLE = Example(
    title="Transpose: naive vs shared-memory tiled vs tiled + padded vs padded + float4",
    setup=setup,
    baseline=lambda x: ext().transpose_naive(x["x"]),
    baseline_name="naive",
    optimized={
        "tiled": Variant(lambda x: ext().transpose_tiled(x["x"]), teaching=True,
                         note="keeps the 32-way shared-memory bank conflict on purpose, to show it"),
        "tiled_padded": Variant(
            lambda x: ext().transpose_tiled_padded(x["x"]), teaching=True,
            note="the tiled kernel plus padding, to show the conflict gone; its 4-byte accesses may fall short "
                 "of the copy bandwidth (tiled_float4 is the kernel to copy)"),
        "tiled_float4": lambda x: ext().transpose_tiled_float4(x["x"]),
    },
    references={"torch_contiguous": lambda x: x["x"].t().contiguous()},
    bytes_moved=lambda x: 2 * 4 * x["x"].numel(),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
