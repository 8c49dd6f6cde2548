"""Atomic work queues: irregular rows scheduled by an atomic counter vs a static partition.

A ragged (CSR) matrix whose rows run from one to 8192 elements; the work is a sum
over each row (of sqrt(v^2 + 1)). One warp handles one row at a time (kernels/work_queue.cu).
`static_partition` gives each persistent warp an equal count of consecutive rows: when the long rows
sit together (rows sorted by length, as after bucketing by sequence length), a few warps get nearly all
the work and the rest of the GPU idles. `atomic_queue` runs the same persistent warps, but each takes
its next `grain` rows from a global atomic counter when it is free, so the load balances itself;
`block_per_row` launches one 32-thread block per row and lets the hardware scheduler balance it, at the
cost of a block launch for every row. `torch_segment_reduce` is PyTorch's own segmented sum.

Distributions: `clustered` (power-law lengths, longest rows first: the case that hurts a static
split), `powerlaw` (the same lengths, shuffled), `uniform` (every row alike: nothing to balance).
Bound: memory-bound: every value is read once (4 B), plus offsets and the output; GB/s counts those.
"""
import torch

from ch12.kernels import ext
from harness import Example, Requires, main

# (rows, mean row length before lengths are capped at MAX_ROW)
SIZES = {"tiny": (64, 16), "small": (1 << 14, 256), "full": (1 << 17, 512)}
MAX_ROW = 1 << 13   # a row is one warp's work: longer rows would make a single warp the tail whatever the schedule


def row_lengths(rows: int, mean: int, dist: str, g: torch.Generator) -> torch.Tensor:
    if dist == "uniform":
        return torch.full((rows,), mean, dtype=torch.int64)
    u = torch.rand(rows, generator=g, dtype=torch.float64).clamp_min(1e-12)
    lengths = u ** (-1 / 1.1)                                # Pareto tail: most rows short, a few very long
    lengths = (lengths * (mean / lengths.clamp(max=MAX_ROW).mean())).clamp(1, MAX_ROW).round().to(torch.int64)
    if dist == "clustered":
        return lengths.sort(descending=True).values
    return lengths


def setup(size, device, seed, dist="clustered"):
    rows, mean = SIZES[size]
    g = torch.Generator().manual_seed(seed)
    lengths = row_lengths(rows, mean, dist, g)
    offsets = torch.zeros(rows + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    values = torch.randn(int(offsets[-1]), device=device, generator=torch.Generator(device=device).manual_seed(seed))
    return {"values": values, "offsets": offsets.to(device), "lengths": lengths.to(device)}


def torch_segment_reduce(x):
    return torch.segment_reduce(torch.sqrt(x["values"] * x["values"] + 1.0), "sum", lengths=x["lengths"])


def schedule(name: str, grain: int = 1):
    return lambda x: ext().rows_sum(x["values"], x["offsets"], name, grain)


EXAMPLE = Example(
    title="Atomic work queue: ragged rows, dynamic atomic counter vs static partition vs block per row",
    setup=setup,
    baseline=schedule("static"),
    baseline_name="static_partition",
    optimized={"atomic_queue": schedule("dynamic", 1), "atomic_queue_grain4": schedule("dynamic", 4),
               "block_per_row": schedule("block_per_row")},
    references={"torch_segment_reduce": torch_segment_reduce},
    distributions=("clustered", "powerlaw", "uniform"),
    bytes_moved=lambda x: 4 * x["values"].numel() + 8 * x["offsets"].numel() + 4 * (x["offsets"].numel() - 1),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
