"""The SM hides memory latency with other warps: a latency-bound kernel at rising occupancy.

Each thread follows chains of dependent loads through a random permutation far larger than L2
(`p = next[p]`, 32 times per chain): a warp can have only one load in flight, and each waits a full
DRAM latency. An SM hides the wait by issuing from another resident warp, so by Little's law (loads in
flight = throughput x latency) the time falls as warps per SM rise, until the memory system rather than
latency sets it. The kernel is the same in every variant; only residency changes, set by the grid: the
launch has exactly 1, 2, 4, 8 or 16 blocks of 128 threads (4 warps) per SM, each thread taking chains
in a grid-stride loop. `warps_4` is a deliberately starved teaching baseline; `warps_64` is the Hopper
maximum (2048 threads per SM). Residency is not limited with an unused shared-memory request, the usual
trick: that also shrinks the L1, which holds the lines of loads in flight, and caps the parallelism
being measured. Run this file directly on a GPU to print the warp size and each variant's blocks per SM.

Bound: chains x hops random 4-byte loads, each fetching a 32-byte sector: at full size 2.2 M chains x 32
hops = 70 M sectors = 2.3 GB of DRAM traffic, 0.53 ms at the H200's measured 4223 GB/s copy bandwidth; a
latency bound below that: with W warps per SM, 132 x W x 32 loads are in flight per ~0.7 us of latency.
GB/s below count only the 4 useful bytes per hop.
"""
import torch

from harness import Example, Requires, main

# (permutation entries, chains, hops): full is 64 Mi entries (256 MiB, 4x the L2) and 2.2 M chains
SIZES = {"tiny": (1 << 12, 1024, 8), "small": (1 << 22, 1 << 18, 16), "full": (1 << 26, 132 * 2048 * 8, 32)}
WARPS = {"warps_4": 1, "warps_8": 2, "warps_16": 4, "warps_32": 8, "warps_64": 0}  # name -> blocks/SM cap (0: none)


def setup(size, device, seed):
    entries, chains, hops = SIZES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    nxt = torch.randperm(entries, device=device, generator=g).to(torch.int32)
    start = torch.randint(0, entries, (chains,), device=device, generator=g, dtype=torch.int32)
    return {"next": nxt, "start": start, "hops": hops}


def chase(blocks_per_sm):
    def run(x):
        from ch2.kernels import ext
        return ext().chase(x["next"], x["start"], x["hops"], blocks_per_sm)
    return run


def torch_gather(x):
    p = x["start"]
    for _ in range(x["hops"]):
        p = x["next"][p.long()]
    return p


EXAMPLE = Example(
    title="Latency hiding: dependent loads at 4 to 64 warps per SM",
    setup=setup,
    baseline=chase(WARPS["warps_4"]),
    baseline_name="warps_4",
    teaching_baseline=True,
    optimized={name: chase(cap) for name, cap in WARPS.items() if name != "warps_4"},
    references={"torch_gather": torch_gather},
    bytes_moved=lambda x: 4 * x["start"].numel() * x["hops"],
    requires=Requires(cuda=True),
)


def describe() -> None:
    from ch2.kernels import ext

    for name, cap in WARPS.items():
        launched, most, warp, sms = ext().chase_occupancy(cap)
        print(f"{name:9s} {launched:2d} blocks x 4 warps = {launched * 4:2d} warps per SM (at most {most * 4} fit; "
              f"warp size {warp}, {sms} SMs, {launched * sms} blocks in the grid)")


if __name__ == "__main__":
    if torch.cuda.is_available():
        describe()
    main(EXAMPLE)
