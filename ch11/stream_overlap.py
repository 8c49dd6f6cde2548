"""Copy/compute overlap: a chunked host -> device -> compute -> host pipeline on several streams vs one.

Data too large to keep on the GPU (an offloaded layer's activations, a batch streamed from host
memory) goes through in chunks: copy chunk i in, compute on it, copy the result out. On one stream the
three steps of every chunk run back to back, so the copy engines idle while the SMs compute and the
SMs idle while the copies run. Give each chunk one of several streams and the copy of chunk i+1 runs
while chunk i computes and chunk i-1 is copied back (the H200 has separate copy engines for each
direction). The host memory is pinned, or the copies could not run asynchronously at all.

Every variant is the whole pipeline: it returns when the last result is in (pinned) host memory.
Bound: one stream takes about chunks x (copy in + compute + copy out); a full pipeline takes about
max(bytes / H2D bandwidth, bytes / D2H bandwidth, total compute) plus one chunk's fill and drain, so
at most ~2.5x faster when the three are equal. The `full` size is tuned so that compute (two fp32
1024x1024 matmuls per 4096-row chunk, ~0.35 ms at 51 TFLOP/s) is close to one chunk's copy (16 MiB,
~0.3 ms at 55 GB/s). GB/s counts the bytes of one direction against the pinned H2D link: 100% means
the pipeline is as fast as copying the data in alone.

The fraction of copy time actually hidden under compute is read from a profiler trace of the run by
`python -m ch11.overlap_trace`, which also draws the timeline.
"""
import torch

from harness import Example, Requires, main

# (chunks, rows per chunk, columns): fp32, so full moves 16 x 16 MiB each way
SIZES = {"tiny": (4, 64, 64), "small": (8, 1024, 1024), "full": (16, 4096, 1024)}
MATMULS_PER_CHUNK = 2


def setup(size, device, seed, *, chunks=None, matmuls=MATMULS_PER_CHUNK):
    n_chunks, rows, cols = SIZES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    data = torch.randn(chunks or n_chunks, rows, cols, device=device, generator=g)
    weight = torch.randn(cols, cols, device=device, generator=g) / cols**0.5   # keeps tanh(x @ w) unsaturated
    if device.type == "cuda":  # drawn on the GPU (fast), kept in page-locked host memory the copy engines read
        data = torch.empty(data.shape, pin_memory=True).copy_(data)
    return {"host": data, "weight": weight, "matmuls": matmuls}


def compute(chunk: torch.Tensor, weight: torch.Tensor, matmuls: int) -> torch.Tensor:
    """The per-chunk work: a few dense layers."""
    y = chunk
    for _ in range(matmuls):
        y = torch.tanh(y @ weight)
    return y


def reference(x) -> torch.Tensor:
    """The same computation without chunks or streams (any device), for checking the pipelines."""
    w = x["weight"]
    return compute(x["host"].to(w.device), w, x["matmuls"]).cpu()


_STREAMS: dict[tuple[int, int], list[torch.cuda.Stream]] = {}


def side_streams(device: torch.device, n: int) -> list[torch.cuda.Stream]:
    """n streams, made once per device (creating streams is a driver call; they hold no data)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    key = (index, n)
    if key not in _STREAMS:
        _STREAMS[key] = [torch.cuda.Stream(device=index) for _ in range(n)]
    return _STREAMS[key]


def pipeline(x, streams: list[torch.cuda.Stream] | None) -> torch.Tensor:
    """Chunk i goes on streams[i % len(streams)]; None: everything on the current stream."""
    host, w, matmuls = x["host"], x["weight"], x["matmuls"]
    device = w.device
    out = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
    main_stream = torch.cuda.current_stream(device)
    lanes = streams or [main_stream]
    for s in lanes:
        s.wait_stream(main_stream)   # whatever made the inputs is done before any chunk starts
    for i in range(host.shape[0]):
        with torch.cuda.stream(lanes[i % len(lanes)]):
            chunk = host[i].to(device, non_blocking=True)
            out[i].copy_(compute(chunk, w, matmuls), non_blocking=True)
    for s in lanes:
        main_stream.wait_stream(s)
    main_stream.synchronize()        # the call ends when the last result is in host memory
    return out


def one_stream(x):
    return pipeline(x, None)


def streams(n: int):
    return lambda x: pipeline(x, side_streams(x["weight"].device, n))


# no edge distributions: the variants differ only in streams and chunking; each chunk runs the same PyTorch
# ops (a matmul and tanh, kept unsaturated by the weight's scale), so no input value separates them.
EXAMPLE = Example(
    title="Copy/compute overlap: chunked H2D -> compute -> D2H on several streams vs one (PyTorch)",
    setup=setup,
    baseline=one_stream,
    baseline_name="one_stream",
    optimized={"streams_2": streams(2), "streams_3": streams(3), "streams_4": streams(4)},
    bytes_moved=lambda x: x["host"].numel() * x["host"].element_size(),  # one direction (see the docstring)
    bandwidth_ceiling="h2d",
    flops=lambda x: 2 * x["host"].numel() * x["host"].shape[-1] * x["matmuls"],
    flops_dtype="fp32",
    requires=Requires(cuda=True),  # streams, pinned memory and copy engines have no CPU meaning
)

if __name__ == "__main__":
    main(EXAMPLE)
