"""Instruction-level parallelism: row sums with one accumulator vs four or eight independent ones.

One block per row of a 256 MB matrix. The straightforward loop (`acc += row[i]`, stride blockDim.x)
has one load in flight per thread: each add waits for its load, and the next load is not issued until
the loop comes round. Splitting the sum over K independent accumulators, with the loop unrolled by K,
lets each thread issue K loads back to back: K times the bytes in flight at the same occupancy, which
is what a memory-latency-bound loop needs. `torch_sum` is PyTorch's `x.sum(dim=1)`, for reference.
The data are uniform in [0, 1), so the sums are well conditioned and any summation order agrees to
float32 rounding.

Bound: full size reads 256 MiB (and writes 32 KiB): about 64 us at the H200's measured 4.2 TB/s copy
bandwidth (a read-only stream can run a little faster than a copy).
"""
import torch

from ch8.kernels import ext
from harness import Example, Requires, main

SHAPES = {"tiny": (33, 1000), "small": (1024, 4096), "full": (8192, 8192)}  # full: 256 MB


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.rand(*SHAPES[size], device=device, generator=g)}


# no edge distributions: the inputs are already all positive (the sums grow with the row: the hard case for a
# narrow accumulator, which fails here at once); inputs that cancel would make honest summation orders
# disagree beyond fp32's tolerance (see the docstring).
EXAMPLE = Example(
    title="Row sums: one accumulator vs 4 and 8 independent accumulators (ILP)",
    setup=setup,
    baseline=lambda x: ext().row_sum(x["x"], 1),
    baseline_name="one_accumulator",
    optimized={
        "four_accumulators": lambda x: ext().row_sum(x["x"], 4),
        "eight_accumulators": lambda x: ext().row_sum(x["x"], 8),
    },
    references={"torch_sum": lambda x: x["x"].sum(dim=1)},
    bytes_moved=lambda x: 4 * (x["x"].numel() + x["x"].shape[0]),
    flops=lambda x: x["x"].numel(),
    flops_dtype="fp32",
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
