"""Block size: a fixed choice vs the one the occupancy API proposes (cudaOccupancyMaxPotentialBlockSize).

The same SiLU kernel body, launched with a hand-picked 256 threads per block and one thread per element,
and with the block size and grid the occupancy API returns for it (the grid that fills every SM once at
the best occupancy, with a grid-stride loop over the rest). For a light, memory-bound kernel both
should reach about the same bandwidth: the API's value is that it gets there without guessing, and
that it accounts for registers and shared memory when a kernel has many (Chapter 8 shows that case).
Run this file directly on a GPU to also print the API's choice and the resident warps per block size.
"""
import torch
import torch.nn.functional as F

from ch6.kernels import ext
from harness import Example, Requires, main

N = {"tiny": 1000, "small": 1 << 22, "full": 1 << 25}  # full: 128 MB in, 128 MB out


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(N[size], device=device, generator=g) * 4}


def describe_choice() -> None:
    """What the occupancy API proposes on this GPU, and the occupancy of each block size."""
    min_grid, block = ext().silu_occupancy()
    warps_max = torch.cuda.get_device_properties(0).max_threads_per_multi_processor // 32
    print(f"occupancy API: block {block}, grid {min_grid} (fills the GPU once)")
    for b in (64, 128, 256, 512, 1024):
        warps = ext().blocks_per_sm(True, b) * b // 32
        print(f"  block {b:4d}: {warps:2d} of {warps_max} warps resident per SM")


EXAMPLE = Example(
    title="SiLU: fixed 256-thread blocks vs the occupancy API's block size",
    setup=setup,
    baseline=lambda x: ext().silu_fixed_block(x["x"]),
    baseline_name="fixed_block_256",
    optimized={
        "occupancy_api": lambda x: ext().silu_occupancy_api(x["x"]),
        "torch_silu": lambda x: F.silu(x["x"]),
    },
    bytes_moved=lambda x: 2 * 4 * x["x"].numel(),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    if torch.cuda.is_available():
        describe_choice()
    main(EXAMPLE)
