"""Allocating inside the loop vs preallocated, reused buffers.

A normalise-and-accumulate loop over a stream of chunks. The first version allocates two new
temporaries each step; the second allocates its buffers once and writes into them with `out=` and
in-place ops. Both launch the same kernels, so the difference is the allocator's work (on the CPU,
fresh pages from the OS; on the GPU, PyTorch's caching allocator, which is already cheap).
"""
import torch

from harness import Example, main

SHAPES = {"tiny": (8, 1 << 14), "small": (32, 1 << 20), "full": (64, 1 << 22)}  # (chunks, elements each)


def setup(size, device, seed):
    chunks, n = SHAPES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    xs = [torch.randn(n, device=device, generator=g) for _ in range(chunks)]
    mean, std = torch.randn(n, device=device, generator=g), torch.rand(n, device=device, generator=g) + 0.5
    return {"xs": xs, "mean": mean, "inv_std": 1.0 / std,
            "acc": torch.empty(n, device=device), "tmp": torch.empty(n, device=device)}


def allocate_each_step(x):
    acc = torch.zeros_like(x["mean"])
    for chunk in x["xs"]:
        acc += (chunk - x["mean"]) * x["inv_std"]  # two fresh temporaries per step
    return acc


def reuse_buffers(x):
    acc, tmp = x["acc"], x["tmp"]
    acc.zero_()
    for chunk in x["xs"]:
        torch.sub(chunk, x["mean"], out=tmp)
        tmp.mul_(x["inv_std"])
        acc.add_(tmp)
    return acc


EXAMPLE = Example(
    title="Allocate in the loop vs reuse preallocated buffers",
    setup=setup,
    baseline=allocate_each_step,
    optimized={"preallocated": reuse_buffers},
    # The preallocated buffers are inputs that the optimized variant writes into and returns (as an
    # `out=` argument would be): declared, so that each call gets buffers of its own.
    mutates_inputs=True,
    output_may_alias_input=True,
    # Minimum traffic: read every chunk once, read mean and inv_std once, write the result once.
    bytes_moved=lambda x: 4 * x["mean"].numel() * (len(x["xs"]) + 3),
)

if __name__ == "__main__":
    main(EXAMPLE)
