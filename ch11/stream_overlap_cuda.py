"""Copy/compute overlap in CUDA C++: the chunked H2D -> kernel -> D2H pipeline on n streams vs one.

The same pipeline as stream_overlap.py with cudaMemcpyAsync and a kernel of our own
(kernels/overlap_pipeline.cu): chunk i's copy in, kernel and copy out go on stream i % n, so the two
copy engines and the SMs work on different chunks at once. The kernel does `iters` dependent FMAs per
element; at `full` one chunk is 16 MiB (~0.3 ms each way at 55 GB/s) and its kernel about as long,
the case where overlap pays most. Host buffers are pinned (an unpinned buffer makes the copies
synchronous and the streams useless).

Bound: one stream ~ chunks x (copy in + kernel + copy out); n streams ~ max(copy in, copy out,
kernels) over all chunks plus one chunk's fill and drain: at most ~3x here, ~2.5x with the drain. GB/s
counts one direction's bytes against the pinned H2D link (100%: as fast as copying the data in alone).
"""
import torch

from ch11.kernels import ext
from harness import Example, Requires, main

# (chunks, floats per chunk, FMAs per element)
SIZES = {"tiny": (4, 1 << 12, 64), "small": (8, 1 << 20, 1024), "full": (16, 1 << 22, 2048)}


def setup(size, device, seed):
    chunks, per_chunk, iters = SIZES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    host = torch.randn(chunks * per_chunk, device=device, generator=g)
    if device.type == "cuda":  # drawn on the GPU (fast), kept in page-locked host memory
        host = torch.empty(host.shape, pin_memory=True).copy_(host)
    return {"host": host, "chunks": chunks, "iters": iters}


def fma_chain_reference(x) -> torch.Tensor:
    """What the kernel computes, in PyTorch (float32, one FMA at a time: slow, for checking only)."""
    v = x["host"].clone()
    for _ in range(x["iters"]):
        v = torch.addcmul(torch.full_like(v, 0.001), v, torch.full_like(v, 0.999))
    return v


def pipeline(n_streams: int):
    return lambda x: ext().overlap_pipeline(x["host"], x["chunks"], n_streams, x["iters"])


EXAMPLE = Example(
    title="Copy/compute overlap in CUDA C++: chunked H2D -> kernel -> D2H on several streams vs one",
    setup=setup,
    baseline=pipeline(1),
    baseline_name="one_stream",
    optimized={"streams_2": pipeline(2), "streams_3": pipeline(3), "streams_4": pipeline(4)},
    bytes_moved=lambda x: x["host"].numel() * 4,  # one direction (see the docstring)
    bandwidth_ceiling="h2d",
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
