"""Coalesced vs strided global memory access (the strided kernel is a teaching example).

The same `out = x * alpha` over a row-major matrix, with different mappings of threads to elements. In
the coalesced kernels thread t takes element t, so a warp's 32 loads fall in 128 contiguous bytes. The
strided kernel walks the matrix column by column (a swapped row/column index, a common bug): the 32
threads of a warp touch 32 different rows, one 32-byte sector each, of which they use 4 bytes. It is a
deliberately bad access pattern, labelled as a teaching baseline.

Coalescing is necessary, not sufficient. `coalesced` (one element per thread, a teaching variant)
wastes no bytes, yet each thread has a single 4-byte load in flight: a full SM keeps 8 KB in flight,
well short of what HBM3e needs to stay busy (Little's law: bytes in flight = bandwidth x latency).
`coalesced_ilp` is the same coalesced 4-byte access with several independent loads per thread, issued
before any store (Chapter 8's ilp_accumulators is this idea): the kernel to copy, and the figure to
look at is how close it comes to the copy bandwidth. `torch_eager` is PyTorch's `x * alpha`, for
reference.

Bound: full size reads 128 MiB and writes 128 MiB: about 64 us at the H200's measured 4.2 TB/s copy
bandwidth.
"""
import torch

from ch7.kernels import ext
from harness import Example, Requires, Variant, main

SHAPES = {"tiny": (96, 80), "small": (2048, 1024), "full": (8192, 4096)}  # full: 128 MiB in, 128 MiB out


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    alpha = 0.5 + float(torch.rand(1, generator=torch.Generator().manual_seed(seed)))
    return {"x": torch.randn(*SHAPES[size], device=device, generator=g), "alpha": alpha}


EXAMPLE = Example(
    title="Coalesced vs strided access: out = x * alpha",
    setup=setup,
    baseline=lambda x: ext().scale_strided(x["x"], x["alpha"]),
    baseline_name="strided",
    teaching_baseline=True,
    optimized={
        "coalesced": Variant(
            lambda x: ext().scale_coalesced(x["x"], x["alpha"]), teaching=True,
            note="coalesced, one 4-byte load in flight per thread: too little in flight for the copy bandwidth"),
        "coalesced_ilp": lambda x: ext().scale_coalesced_ilp(x["x"], x["alpha"]),
    },
    references={"torch_eager": lambda x: x["x"] * x["alpha"]},
    bytes_moved=lambda x: 2 * 4 * x["x"].numel(),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
