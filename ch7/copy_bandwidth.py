"""A device-to-device copy: a scalar copy kernel vs 16-byte copy kernels, as a fraction of the copy bandwidth.

A copy is the simplest memory-bound kernel: it sets the ceiling every other memory-bound kernel is
measured against. The baseline is the copy one writes first: one 4-byte word per thread. The optimized
kernels move 16 bytes per load and store (a quarter of the memory instructions, four times the bytes
in flight per thread); `vec16_x4` also keeps four such loads in flight per thread before storing.
`torch_clone` is PyTorch's own copy (`x.clone()`, a device-to-device memcpy), for reference. The target
is at least 90% of the copy bandwidth benchmark_peak measures on the same GPU; bytes are counted both
ways (read + write), as that benchmark counts them.

Bound: full size reads 1 GiB and writes 1 GiB (the buffer size benchmark_peak.py measures the copy
bandwidth with): about 0.51 ms at the H200's measured 4.2 TB/s.
"""
import torch

from ch7.kernels import ext
from harness import Example, Requires, main

# float32 elements; full: 1 GiB each way; tiny: a ragged tail of 3 elements past a multiple of 4
N = {"tiny": 1000 * 4 + 3, "small": 1 << 22, "full": 1 << 28}


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(N[size], device=device, generator=g)}


EXAMPLE = Example(
    title="Device copy: a scalar copy kernel vs 16-byte copy kernels (PyTorch clone for reference)",
    setup=setup,
    baseline=lambda x: ext().copy_scalar(x["x"]),
    baseline_name="scalar",
    optimized={
        "vec16": lambda x: ext().copy_vec16(x["x"]),
        "vec16_x4": lambda x: ext().copy_vec16_x4(x["x"]),
    },
    references={"torch_clone": lambda x: x["x"].clone()},
    bytes_moved=lambda x: 2 * x["x"].numel() * x["x"].element_size(),  # read + write
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
