"""A device-to-device copy kernel against PyTorch's copy, as a fraction of the GPU's copy bandwidth.

A copy is the simplest memory-bound kernel: it sets the ceiling every other memory-bound kernel is
measured against. `torch_clone` is PyTorch's own copy (`x.clone()`, a device-to-device memcpy). The
kernels move 16 bytes per load and store; `vec16_x4` also keeps four loads in flight per thread before
storing. The target is at least 90% of the copy bandwidth benchmark_peak measures on the same GPU;
bytes are counted both ways (read + write), as that benchmark counts them.
"""
import torch

from ch7.kernels import ext
from harness import Example, Requires, main

# float32 elements; full: 1 GiB each way, the buffer size benchmark_peak.py measures the copy bandwidth with
N = {"tiny": 1000 * 4 + 3, "small": 1 << 22, "full": 1 << 28}


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(N[size], device=device, generator=g)}


EXAMPLE = Example(
    title="Device copy: PyTorch clone vs 16-byte copy kernels",
    setup=setup,
    baseline=lambda x: x["x"].clone(),
    baseline_name="torch_clone",
    optimized={
        "vec16": lambda x: ext().copy_vec16(x["x"]),
        "vec16_x4": lambda x: ext().copy_vec16_x4(x["x"]),
    },
    bytes_moved=lambda x: 2 * x["x"].numel() * x["x"].element_size(),  # read + write
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
