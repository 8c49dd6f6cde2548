"""The stream-ordered allocator: cudaMallocAsync from a pool vs cudaMalloc/cudaFree every iteration.

A loop that needs a scratch buffer each iteration (kernels/stream_alloc.cu). With cudaMalloc and
cudaFree, every iteration makes two driver calls that map and unmap device memory, and cudaFree waits
for the whole device to go idle: the host stalls every iteration and the GPU idles while it does.
cudaMallocFromPoolAsync/cudaFreeAsync put the allocation and the free on the stream: the pool hands
the same memory back next iteration without the driver, and the host never waits. The pool's release
threshold decides whether it keeps that memory across synchronizations: `pool_keep` (threshold: never
release) allocates nothing after the first call; `pool_release` (threshold 0) gives it back at every
synchronization, so each call maps it again once. PyTorch's own caching allocator does what
`pool_keep` does, for every tensor (see allocator_fragmentation.py for its cost in fragmentation).

Bound: the kernels move 4 x 4 bytes per element per iteration (two reads, two writes); GB/s counts
them, so the fraction of copy bandwidth says how much of the time the allocator calls take.
"""
import torch

from ch11.kernels import ext
from harness import Example, Requires, main

# (floats per buffer, iterations)
SIZES = {"tiny": (1 << 10, 4), "small": (1 << 20, 16), "full": (1 << 22, 32)}
MALLOC_FREE, POOL_KEEP, POOL_RELEASE = 0, 1, 2


def setup(size, device, seed):
    n, iters = SIZES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(n, device=device, generator=g), "iters": iters}


def reference(x) -> torch.Tensor:
    """The loop in PyTorch, summed in the same order as the kernels (runs anywhere)."""
    out = torch.zeros_like(x["x"])
    for it in range(x["iters"]):
        out += torch.addcmul(torch.ones_like(x["x"]), x["x"], torch.full_like(x["x"], float(it + 1)))
    return out


def loop(mode: int):
    return lambda x: ext().alloc_loop(x["x"], x["iters"], mode)


EXAMPLE = Example(
    title="Stream-ordered allocator: cudaMallocAsync from a pool vs cudaMalloc/cudaFree per iteration",
    setup=setup,
    baseline=loop(MALLOC_FREE),
    baseline_name="malloc_free",
    optimized={"pool_keep": loop(POOL_KEEP), "pool_release": loop(POOL_RELEASE)},
    bytes_moved=lambda x: 16 * x["x"].numel() * x["iters"],
    requires=Requires(cuda=True),  # device memory allocation has no CPU counterpart here
)

if __name__ == "__main__":
    main(EXAMPLE)
