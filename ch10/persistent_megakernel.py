"""Persistent kernels: a chain of small dependent layers in one launch vs a launch per layer.

A decode step at batch 8 is a long chain of small operations, each needing the previous one's output.
Here the chain is `layers` layers of h <- tanh(W_l h + b_l) (fp32, W_l [width, width] as nn.Linear stores
it, a batch of at most 8). One layer is 4 MiB of weights at full size: 1024 rows, one per warp, 128 blocks;
it finishes in about a microsecond or two, about what launching it costs. So the time goes to the gaps:

- `launch_per_layer` (baseline): one launch of our per-layer kernel per layer, from a C++ loop; the kernel
  boundary is the barrier between layers, and the GPU waits for the host at every layer.
- `persistent_grid_sync`: one cooperative launch (blocks <= what fits on the GPU at once) walks every layer;
  `cooperative_groups::this_grid().sync()` separates them.
- `persistent_split_barrier`: the barrier split in two. A block arrives on layer l's counter as soon as its
  rows are written (`__threadfence`, then `red.release.gpu`), asks L2 for its weight rows of layer l+1 (they
  do not depend on layer l: only h does), and only then waits for the other blocks (`ld.acquire.gpu` spin,
  which traps after ~2 s instead of hanging). The DRAM stream of weights no longer stops at every barrier.

Every output row is one warp's dot products in the same order in all of these, so they agree bitwise.
References: the chain in PyTorch (`F.linear` + `torch.tanh` per layer: cuBLAS plus a tanh kernel, two
launches per layer) and `cuda_graph_per_layer`, our very per-layer launches built once into a CUDA graph,
the usual way to remove launch overhead without changing the kernels. Every call here has new weights at
new addresses, so the graph's node arguments are rewritten per call (cudaGraphExecKernelNodeSetParams,
as in ch12/graph_chain.py); `torch.cuda.graph` would have to copy all the weights into its static buffers
each call (2 x 256 MiB of traffic at full size, more than the chain itself), which a decoder never does.

Inputs: W_l ~ N(0, 1/width) and b_l ~ N(0, 0.5^2) keep the activations' RMS near 0.5 at every layer and
the chain stable (float32 and float64 agree to ~1e-6 after 64 layers); `saturated` adds b_l ~ N(0, 30^2),
so pre-activations reach +-125 and tanh saturates (exp(2x) overflows float32 beyond 44: a tanh written as
(e^2x - 1) / (e^2x + 1) gives NaN there); `ragged` has an odd batch and a width that is not a multiple of 4
(the kernels' scalar path).

Bound (H200, measured ceilings in peaks/h200.json): weights are read once per call, 4 x layers x width^2
bytes, at 4.6 TB/s, against layers x the gap a launch leaves (benchmark_peak.py: 4.2 us per launch eager
through PyTorch, 0.94 us per kernel in a graph replay; our C++ loop sits in between).
- small, batch 4, width 1024, 16 layers: 64 MiB, 15 us of reading vs 16 launches, ~30-65 us: launch-bound.
- full, batch 8, width 1024, 64 layers: 256 MiB, 58 us of reading vs 64 launches, ~120-270 us: launch-bound;
  a persistent kernel's floor is the 58 us plus 63 barriers (~1 us each; fewer hidden with the split one).
At width 2048 the weights (16 MiB, 3.6 us per layer) would cost more than a launch, and the persistent
kernel could save only the gaps. The FLOPs (2 x batch x width^2 per layer) are batch/2 per byte, 2 to 4,
far below the fp32 ridge (~11 FLOPs per byte on an H200): the weights' bytes, not arithmetic, are the floor.
Measured on the H200 (README): 7-8 us a layer in every version, 12-14% of the copy bandwidth, so neither
bound is reached; the per-row reads of h from L1/L2 (32 KiB per 4 KiB weight row at batch 8) are the likely
limit, and the split barrier gains 1.17x, the grid barrier loses (0.91x).
"""
import torch
import torch.nn.functional as F

from ch10.kernels import ext
from harness import Example, Requires, Variant, main

SIZES = {"tiny": (2, 64, 4), "small": (4, 1024, 16), "full": (8, 1024, 64)}  # (batch, width, layers)
BIAS_STD = {"normal": 0.5, "saturated": 30.0, "ragged": 0.5}


def setup(size, device, seed, dist="normal"):
    batch, width, layers = SIZES[size]
    if dist == "ragged":  # an odd batch and a width that is not a multiple of 4: the scalar path
        batch, width = max(1, batch - 1), width - 3
    g = torch.Generator(device=device).manual_seed(seed)
    w = torch.randn(layers, width, width, device=device, generator=g) * width ** -0.5
    b = torch.randn(layers, width, device=device, generator=g) * BIAS_STD[dist]
    x = torch.randn(batch, width, device=device, generator=g)
    return {"x": x, "w": w, "b": b}


def torch_chain(x):
    """The chain in PyTorch: a linear and a tanh per layer."""
    h = x["x"]
    for w, b in zip(x["w"], x["b"], strict=True):
        h = torch.tanh(F.linear(h, w, b))
    return h


def chain(kernel: str):
    return lambda x: getattr(ext(), f"tanh_chain_{kernel}")(x["x"], x["w"], x["b"])


EXAMPLE = Example(
    title="Persistent megakernel: a chain of small layers, one launch each vs one persistent launch",
    setup=setup,
    baseline=chain("per_layer"),
    baseline_name="launch_per_layer",
    optimized={
        "persistent_grid_sync": Variant(chain("grid_sync"),
                                        note="one cooperative launch, grid.sync() between layers"),
        "persistent_split_barrier": Variant(chain("split_barrier"),
                                            note="per-layer arrival counters; next layer's weights "
                                                 "prefetched to L2 between arriving and waiting"),
    },
    references={
        "torch_linear_tanh": Variant(torch_chain, note="F.linear + torch.tanh per layer"),
        "cuda_graph_per_layer": Variant(chain("graph"), note="the baseline's launches as one graph; "
                                                             "node arguments rewritten per call"),
    },
    bytes_moved=lambda x: 4 * (x["w"].numel() + x["b"].numel() + 2 * x["x"].numel()),
    flops=lambda x: 2 * x["x"].numel() * x["w"].shape[1] * x["w"].shape[0],
    flops_dtype="fp32",
    items=lambda x: x["w"].shape[0],
    items_unit="layers",
    distributions=("normal", "saturated", "ragged"),
    # The headline is CUDA kernels; on the CPU tests/test_ch10_megakernel.py checks torch_chain and the inputs.
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
