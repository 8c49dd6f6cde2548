"""Block size: a fixed choice vs the one the occupancy API proposes (cudaOccupancyMaxPotentialBlockSize).

The same SiLU body, launched with a hand-picked 256 threads per block and one thread per element (the
baseline), and with the block size and grid the occupancy API returns for a grid-stride version of it
(the grid that fills every SM once at the best occupancy). `occupancy_api` keeps the baseline's scalar
body, so it shows the block-size choice alone: for a light, memory-bound kernel it changes little,
because one 4-byte load per thread keeps too few bytes in flight whatever the block size (a full SM
holds 2048 threads, 8 KB in flight; HBM3e needs several times that). `occupancy_api_float4` asks the
API the same question for a body that loads four 16-byte vectors per thread before computing, and launches
a block per chunk of work rather than the API's one-wave grid (whose grid-stride loop leaves SMs idle in its
last pass: 83% of the copy bandwidth against 94% on the H200, in scripts/tune_memory_kernels.py): that is the
kernel to copy. The API's value is that it gets the block size right without guessing, and that it
accounts for registers and shared memory when a kernel has many (Chapter 8 shows that case).
`torch_silu` is PyTorch's `F.silu`, for reference. Run this file directly on a GPU to also print the
API's choices and the resident warps per block size.

Bound: full size reads 128 MiB and writes 128 MiB: about 64 us at the H200's measured 4.2 TB/s copy
bandwidth; the arithmetic (an exp and a division per element) is far below the FP32 ceiling.

Distributions: `normal` (4 x N(0, 1)); `large` (400 x N(0, 1): exp(-x) is inf below x = -88 and x / inf must
come out 0, where a SiLU written x * e^x / (1 + e^x) gives inf / inf = NaN above x = 88).
"""
import torch
import torch.nn.functional as F

from ch6.kernels import ext
from harness import Example, Requires, Variant, main

N = {"tiny": 1000, "small": 1 << 22, "full": 1 << 25}  # full: 128 MiB in, 128 MiB out


def setup(size, device, seed, dist="normal"):
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(N[size], device=device, generator=g) * (400 if dist == "large" else 4)}


def describe_choice() -> None:
    """What the occupancy API proposes on this GPU, and the occupancy of each block size."""
    warps_max = torch.cuda.get_device_properties(0).max_threads_per_multi_processor // 32
    for label, float4 in (("scalar", False), ("float4", True)):
        min_grid, block = ext().silu_occupancy(float4)
        print(f"occupancy API, {label} body: block {block}, grid {min_grid} (fills the GPU once)")
    for b in (64, 128, 256, 512, 1024):
        warps = ext().blocks_per_sm(True, b) * b // 32
        print(f"  scalar body, block {b:4d}: {warps:2d} of {warps_max} warps resident per SM")


EXAMPLE = Example(
    title="SiLU: fixed 256-thread blocks vs the occupancy API's block size (scalar and float4 bodies)",
    setup=setup,
    baseline=lambda x: ext().silu_fixed_block(x["x"]),
    baseline_name="fixed_block_256",
    optimized={
        "occupancy_api": Variant(
            lambda x: ext().silu_occupancy_api(x["x"]), teaching=True,
            note="the baseline's scalar body with the API's block and grid: shows the block size alone; "
                 "one 4-byte load in flight per thread is too little for the copy bandwidth"),
        "occupancy_api_float4": lambda x: ext().silu_float4(x["x"]),
    },
    references={"torch_silu": lambda x: F.silu(x["x"])},
    bytes_moved=lambda x: 2 * 4 * x["x"].numel(),
    requires=Requires(cuda=True),
    distributions=("normal", "large"),
)

if __name__ == "__main__":
    if torch.cuda.is_available():
        describe_choice()
    main(EXAMPLE)
