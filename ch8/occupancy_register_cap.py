"""Occupancy limited by registers, raised with __launch_bounds__ register caps.

An embedding-style lookup, out = table[idx] * scale, with random indices into a 256 MB table: each
element waits on two dependent DRAM loads, so throughput follows the number of warps in flight. The
kernel also has a rarely used pooled mode that needs ~200 registers per thread, and registers are
allocated for the worst path: without launch bounds only one 256-thread block (8 warps) fits per SM.
`__launch_bounds__(256, 4)` and `(256, 8)` cap registers at 64 and 32 per thread; the pooled path then
spills to local memory, and the lookup that runs gets 32 or 64 warps per SM. Run this file directly on
a GPU to print each variant's registers, spill bytes and resident blocks; ncu shows achieved occupancy
(the profiling harness collects it). `torch_index_select` is PyTorch's own gather, for reference.

Bound: the useful bytes (each index, value and output once: 384 MiB at full size) are not what limits
a random gather: every 4-byte value costs a whole 32-byte sector from a random DRAM page, and each
lookup is two dependent loads. The copy bandwidth is out of reach by construction, and the GB/s here
is low for every variant; the figure to look at is the speedup from more warps in flight.
"""
import torch

from ch8.kernels import ext
from harness import Example, Requires, Variant, main

# (table entries, lookups): full is a 256 MB table (far beyond L2) and 32M lookups
SIZES = {"tiny": (1 << 12, 1000), "small": (1 << 22, 1 << 20), "full": (1 << 26, 1 << 25)}
CAPS = {"no_launch_bounds": 0, "launch_bounds_256x4": 4, "launch_bounds_256x8": 8}


def setup(size, device, seed):
    entries, lookups = SIZES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    return {"table": torch.randn(entries, device=device, generator=g),
            "idx": torch.randint(0, entries, (lookups,), device=device, generator=g, dtype=torch.int32),
            "scale": 0.5 + float(torch.rand(1, generator=torch.Generator().manual_seed(seed)))}


def lookup(min_blocks_per_sm):
    return lambda x: ext().gather(x["table"], x["idx"], x["scale"], 0, min_blocks_per_sm)


def describe() -> None:
    warps_max = torch.cuda.get_device_properties(0).max_threads_per_multi_processor // 32
    for name, cap in CAPS.items():
        regs, spill, blocks = ext().gather_info(cap)
        print(f"{name:20s} {regs:3d} registers/thread, {spill:4d} B spilled/thread, "
              f"{blocks} blocks = {blocks * 8} of {warps_max} warps per SM")


EXAMPLE = Example(
    title="Random gather: register-limited occupancy vs __launch_bounds__ caps",
    setup=setup,
    baseline=lookup(CAPS["no_launch_bounds"]),
    baseline_name="no_launch_bounds",
    optimized={
        name: Variant(lookup(cap), note="random 4-byte gathers: latency-bound, each value costs a 32-byte sector")
        for name, cap in CAPS.items() if cap
    },
    references={"torch_index_select": lambda x: torch.index_select(x["table"], 0, x["idx"]) * x["scale"]},
    # Useful bytes: each index, each gathered value and each output once. A random gather actually
    # moves a 32-byte sector per 4-byte value, so this GB/s is well below the copy bandwidth.
    bytes_moved=lambda x: 3 * 4 * x["idx"].numel(),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    if torch.cuda.is_available():
        describe()
    main(EXAMPLE)
