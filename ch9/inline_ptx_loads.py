"""Inline PTX: streaming loads that skip L1 (`ld.global.nc.L1::no_allocate`) vs plain C++ loads.

`out = alpha * x + y` reads two streams once each. C++ says "load this float4"; it has no words for "and do
not keep it in L1", which PTX does: `ld.global.nc.L1::no_allocate.v4.f32` (read-only path, no L1 allocation),
written here in a four-line `asm` statement. Everything else, including the stores, is the same code. The
SASS shows the difference (`ch9/show_sass.sh` prints both kernels' load instructions: an LDG with .NA for the
PTX one); whether it changes the time depends on whether L1 pollution mattered, and for a pure stream with
nothing else in L1 it may not: the measurement decides, and an even result is the honest lesson that a cache
hint is worth only what the cache was costing. `torch.add(y, x, alpha=...)` is the reference.

Bound: full size 2^26 floats: 2 x 256 MiB read + 256 MiB written = 768 MiB: 191 us at the H200's measured
4223 GB/s copy bandwidth; both kernels aim at >= 85% of it.
"""
import torch

from ch9.kernels import ext
from harness import Example, Requires, Variant, main

N = {"tiny": 4096 + 3, "small": 1 << 22, "full": 1 << 26}  # tiny: a tail that is not a whole float4


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    alpha = 0.5 + float(torch.rand(1, generator=torch.Generator().manual_seed(seed)))
    return {"x": torch.randn(N[size], device=device, generator=g),
            "y": torch.randn(N[size], device=device, generator=g), "alpha": alpha}


EXAMPLE = Example(
    title="Inline PTX: L1::no_allocate streaming loads vs plain C++ loads",
    setup=setup,
    baseline=lambda x: ext().axpy_plain(x["x"], x["y"], x["alpha"]),
    baseline_name="plain_loads",
    optimized={"ptx_no_allocate": Variant(lambda x: ext().axpy_ptx_stream(x["x"], x["y"], x["alpha"]),
                                          note="ld.global.nc.L1::no_allocate.v4.f32 through inline asm")},
    references={"torch_add": lambda x: torch.add(x["y"], x["x"], alpha=x["alpha"])},
    bytes_moved=lambda x: 3 * 4 * x["x"].numel(),
    requires=Requires(cuda=True),  # the baseline is a CUDA kernel
)

if __name__ == "__main__":
    main(EXAMPLE)
