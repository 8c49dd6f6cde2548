"""CUDA graphs in C++: N tiny dependent kernels launched one by one vs captured once and replayed.

Each of the n kernels updates one float (y = y / 2 + 1), so the GPU does almost nothing and the time
is all launch cost: eager, every kernel is a driver call on the host (~2 us) plus a gap on the GPU;
a graph is one launch for all n, and the GPU starts each kernel as soon as the previous one ends.
A graph replays fixed arguments, and each call here has new input and output tensors, so the graph
variants differ in how the new addresses get in (kernels/graph_chain.cu):
`graph_replay` copies x into the graph's static buffer and the result out (two tiny copies);
`graph_set_params` rewrites every node's arguments with cudaGraphExecKernelNodeSetParams;
`graph_exec_update` captures a fresh graph and folds it into the kept one with cudaGraphExecUpdate;
`graph_recapture` (teaching) captures and instantiates a new graph every call.

Bound: launch-bound. Eager ~ n x the eager launch cost benchmark_peak.py measures (4.2 us through
PyTorch on the H200, less from C++); replay ~ n x the graph's per-kernel cost (0.94 us measured).
Goal: >= 3x for n = 200.
"""
import torch

from ch12.kernels import ext
from harness import Example, Requires, Variant, main

KERNELS = {"tiny": 8, "small": 50, "full": 200}


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(1, device=device, generator=g), "n": KERNELS[size]}


def reference(x) -> torch.Tensor:
    """The chain in PyTorch (float32, one fused multiply-add per step, as the kernel does)."""
    y = x["x"].double()
    for _ in range(x["n"]):
        y = (y * 0.5 + 1.0).float().double()   # fmaf rounds once: compute exactly, round to float
    return y.float()


def chain(name: str):
    return lambda x: getattr(ext(), f"chain_{name}")(x["x"], x["n"])


EXAMPLE = Example(
    title="CUDA graphs in C++: N tiny dependent kernels, one launch each vs one graph replay",
    setup=setup,
    baseline=chain("eager"),
    baseline_name="launches",
    optimized={
        "graph_replay": Variant(chain("graph_replay"), note="copies x into the graph's static buffer and y out"),
        "graph_set_params": Variant(chain("graph_set_params"), note="n x cudaGraphExecKernelNodeSetParams per call"),
        "graph_exec_update": Variant(chain("graph_exec_update"), note="capture + cudaGraphExecUpdate per call"),
        "graph_recapture": Variant(chain("graph_recapture"), teaching=True,
                                   note="capture + instantiate per call: what an unreused graph costs"),
    },
    items=lambda x: x["n"],
    items_unit="kernels",
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
