"""Coalesced vs strided global memory access (the strided kernel is a teaching example).

The same `out = x * alpha` over a row-major matrix, with two mappings of threads to elements. In the
coalesced kernel thread t takes element t, so a warp's 32 loads fall in 128 contiguous bytes. The
strided kernel walks the matrix column by column (a swapped row/column index, a common bug): the 32
threads of a warp touch 32 different rows, one 32-byte sector each, of which they use 4 bytes. It is a
deliberately bad access pattern, labelled as a teaching baseline; the figure to look at is how close
the coalesced kernel comes to the copy bandwidth.
"""
import torch

from ch7.kernels import ext
from harness import Example, Requires, main

SHAPES = {"tiny": (96, 80), "small": (2048, 1024), "full": (8192, 4096)}  # full: 128 MB in, 128 MB out


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
        "coalesced": lambda x: ext().scale_coalesced(x["x"], x["alpha"]),
        "torch_eager": lambda x: x["x"] * x["alpha"],
    },
    bytes_moved=lambda x: 2 * 4 * x["x"].numel(),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
