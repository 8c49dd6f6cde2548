"""Thread block clusters: a histogram held in distributed shared memory vs global atomics.

65536 int32 bins (256 KiB) do not fit one CTA's shared memory (227 KiB at most on Hopper), so the usual
per-block shared histogram is out. The baseline adds each element into global memory (`atomicAdd` on
L2). The optimized kernel (ch10/kernels/cluster.cu) launches clusters of 4 CTAs; each CTA holds a quarter
of the bins (64 KiB), and a thread adds each element into the owning CTA's shared memory through
`cluster.map_shared_rank` (DSMEM, the SM-to-SM network), then each CTA writes its slice out once.
Three input distributions: `uniform` bins (little contention), `concentrated` ones (a normal with a
narrow spread: many threads hit the same few hundred bins, where global atomics serialize in L2) and
`hot_bin` (15 of 16 values in one random bin, the rest uniform: every lane of a warp adds to one address, and
that bin's count reaches 15/16 of the elements at every size, so narrow counters or a warp-aggregation
mistake show even at `tiny`).
`torch.bincount` is the reference.

Bound: 4 bytes read per element: 64 Mi elements = 256 MiB, 0.06 ms at 4.8 TB/s; in practice the atomics
bound it: L2 atomic throughput for the baseline, DSMEM atomic throughput for the cluster kernel.
"""
import torch

from ch10.kernels import ext
from harness import Example, Requires, Variant, main

BINS = 65536
ELEMENTS = {"tiny": 1 << 14, "small": 1 << 22, "full": 1 << 26}


def setup(size, device, seed, dist="uniform"):
    n = ELEMENTS[size]
    g = torch.Generator(device=device).manual_seed(seed)
    if dist == "uniform":
        x = torch.randint(0, BINS, (n,), device=device, generator=g)
    elif dist == "concentrated":  # most values within a few hundred bins of the middle
        x = (torch.randn(n, device=device, generator=g) * 100 + BINS / 2).round().clamp(0, BINS - 1)
    else:  # hot_bin: 15 of 16 values in one bin drawn per seed, scattered among uniform ones
        x = torch.randint(0, BINS, (n,), device=device, generator=g)
        hot = torch.rand(n, device=device, generator=g) < 15 / 16
        x[hot] = int(torch.randint(0, BINS, (1,), device=device, generator=g))
    return {"x": x.to(torch.int32)}


EXAMPLE = Example(
    title="Histogram of 65536 bins: global atomics vs a 4-CTA cluster sharing bins through DSMEM",
    setup=setup,
    baseline=lambda x: ext().histogram_global_atomics(x["x"], BINS),
    baseline_name="global_atomics",
    optimized={"cluster_dsmem": Variant(lambda x: ext().histogram_cluster_dsmem(x["x"], BINS),
                                        requires=Requires(min_capability=(9, 0)),
                                        note="clusters of 4 CTAs, 16384 bins (64 KiB) of shared memory each")},
    references={"torch_bincount": Variant(lambda x: torch.bincount(x["x"], minlength=BINS).to(torch.int32),
                                          note="torch.bincount, cast to int32")},
    bytes_moved=lambda x: 4 * x["x"].numel() + 4 * BINS,
    items=lambda x: x["x"].numel(),
    items_unit="elements",
    distributions=("uniform", "concentrated", "hot_bin"),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
