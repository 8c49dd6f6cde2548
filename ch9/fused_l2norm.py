"""Fusion: row-wise L2 normalization in one kernel vs PyTorch's two.

`x / x.norm(dim=-1, keepdim=True)` is what one writes first: a reduction kernel reads x and writes the row
norms, then a division kernel reads x again (and the norms) and writes the result, so x crosses DRAM twice.
The fused kernel gives each row to one warp: 16-byte loads, the sum of squares in fp32, a warp shuffle
reduction, then the row scaled by 1 / max(norm, 1e-12) and written; the row's second read comes from L1/L2
(8 KiB per row at full size), so DRAM sees x once and the output once. Its loop issues one 16-byte load a lane
a step, so few loads are in flight, and half the reads come from L2 on the second pass (ncu at size small).
`fused_row_in_registers` holds the row in the registers of a 128-thread block instead (4 vectors a thread at
4096 columns, all loaded before the reduction, the four warps' sums added in shared memory; rows longer than
8192 or not a multiple of 8 fall back to the loop kernel). A single warp holding the whole row needed 161
registers a thread and ran at 11% occupancy (79% of copy bandwidth, ncu). References: `F.normalize` (the
library one-liner, with the same eps) and `torch.compile` of the eager expression (Inductor fuses it too).

bf16 data, fp32 arithmetic. The eager baseline rounds the norm to bf16 before dividing; the fused kernel does
not, so the two differ by about one bf16 rounding (within the bf16 tolerance).

Bound: full size 16384 x 4096 bf16 = 128 MiB read + 128 MiB written: 64 us at the H200's measured 4223 GB/s
copy bandwidth; the fused kernel aims at >= 85% of it, the eager pair at best at about two thirds (3 x 128 MiB).
"""
import torch
import torch.nn.functional as F

from ch9._compile import compiled
from ch9.kernels import ext
from harness import Example, Requires, Variant, main

SHAPES = {"tiny": (64, 512), "small": (4096, 4096), "full": (16384, 4096)}  # (rows, hidden)


def setup(size, device, seed, dist="normal"):
    rows, cols = SHAPES[size]
    if dist == "ragged":  # a row length that is not a multiple of 8: the element-by-element path
        rows, cols = rows - 5, cols - 3
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(rows, cols, device=device, generator=g)
    if dist == "large":  # sums of squares far beyond bf16's precision; still far from fp32 overflow
        x = x * 1000.0
    return {"x": x.to(torch.bfloat16)}


def eager(x):
    return x["x"] / x["x"].norm(dim=-1, keepdim=True)


EXAMPLE = Example(
    title="Fused L2 norm: one pass per row vs norm-then-divide",
    setup=setup,
    baseline=eager,
    baseline_name="norm_then_divide",
    optimized={"fused_warp_per_row": Variant(lambda x: ext().l2norm_fused(x["x"]),
                                             note="one warp per row, 16-byte loads, fp32 sum of squares"),
               "fused_row_in_registers": Variant(lambda x: ext().l2norm_fused_regs(x["x"]),
                                                 note="a block's registers hold the row: all loads issued first, x read once")},
    references={
        "torch_normalize": lambda x: F.normalize(x["x"], dim=-1),
        "torch_compile": Variant(compiled(eager), requires=Requires(cuda=True, packages=("triton",)),
                                 note="Inductor's fused kernel for the eager expression"),
    },
    bytes_moved=lambda x: 2 * 2 * x["x"].numel(),
    distributions=("normal", "ragged", "large"),
    # The headline is a CUDA kernel; on the CPU the eager expression and F.normalize are checked against each
    # other by tests/test_ch9.py instead (an example with no optimized variant left to run has no result).
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
