"""Device graph launch: a kernel decides which graph runs next and launches it, vs the host deciding.

The work routes data by its content: y = path_a(x) if sum(x) > 0 else path_b(x), each path a graph of
8 small kernels (kernels/rdc/device_graph_launch.cu). `host_decides` runs the deciding kernel, copies
its answer to the host, waits for it, and launches the chosen graph: one host round trip between
deciding and doing. `device_decides` runs the same decision as the one node of a small graph (a kernel
that calls cudaGraphLaunch may run only inside a graph), and that kernel launches the chosen graph
itself (`cudaGraphLaunch(path, cudaStreamGraphTailLaunch)`; the paths are instantiated with
cudaGraphInstantiateFlagDeviceLaunch and uploaded once). Both copy x into the graphs' static buffers
and y out, and compute the same bits. Built with the device-runtime library (kernels/rdc/).

Bound: latency-bound: ~10 small kernels and two copies; the difference is the host round trip.
"""
import torch

from ch12.kernels import rdc
from harness import Example, Requires, main

N = {"tiny": 1 << 12, "small": 1 << 16, "full": 1 << 18}


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(N[size], device=device, generator=g)
    return {"x": x + (0.05 if seed % 2 else -0.05)}  # odd seeds take path a, even seeds path b (almost surely)


def reference(x) -> torch.Tensor:
    """The same routing in PyTorch (its sum is ordered differently: fine unless the sum is ~0)."""
    a, b = (1.5, 0.25) if float(x["x"].sum()) > 0 else (-0.5, 2.0)
    y = x["x"]
    for _ in range(8):
        y = y * a + b
    return y


EXAMPLE = Example(
    title="Device graph launch: a kernel picks and launches the next graph vs a host round trip",
    setup=setup,
    baseline=lambda x: rdc().route(x["x"], on_device=False),
    baseline_name="host_decides",
    optimized={"device_decides": lambda x: rdc().route(x["x"], on_device=True)},
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
