"""Asynchronous prefetch into shared memory (cp.async, double-buffered) vs plain loads.

A 17-point 1D stencil staged through shared memory: each block loops over tiles of 1024 outputs and
needs 1040 inputs per tile. The plain kernel loads a tile (global -> register -> shared), waits, then
computes, so a block does nothing while its loads are in flight. The cp.async kernel issues the copy of
the next tile straight into a second shared buffer before computing the current one, so each block
overlaps its own loads with its own arithmetic, and the copies bypass the registers. `torch_reference`
is the same sum written as 17 shifted PyTorch additions: slow, but plainly correct.
"""
import torch
import torch.nn.functional as F

from ch7.kernels import ext
from harness import Example, Requires, main

RADIUS = 8  # kRadius in kernels/stencil.cu (the binding checks that the taps match)
N = {"tiny": 4 * 1100, "small": 1 << 22, "full": 1 << 25}  # multiples of 4; full: 128 MB in, 128 MB out


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    taps = torch.randn(2 * RADIUS + 1, device=device, generator=g) / (2 * RADIUS + 1)
    return {"x": torch.randn(N[size], device=device, generator=g), "taps": taps, "taps_list": taps.tolist()}


def stencil_reference(x):
    """out[i] = sum_k taps[k] * x[i + k - RADIUS], zero outside the array."""
    n = x["x"].numel()
    padded = F.pad(x["x"], (RADIUS, RADIUS))
    out = torch.zeros_like(x["x"])
    for k, w in enumerate(x["taps_list"]):
        out.add_(padded[k:k + n], alpha=w)
    return out


def stencil_bytes(x):
    return 2 * 4 * x["x"].numel()  # read x once, write out once


def stencil_flops(x):
    return 2 * (2 * RADIUS + 1) * x["x"].numel()


EXAMPLE = Example(
    title="17-point stencil: plain loads vs cp.async double-buffered prefetch",
    setup=setup,
    baseline=lambda x: ext().stencil_plain(x["x"], x["taps"]),
    baseline_name="plain_loads",
    optimized={
        "cp_async": lambda x: ext().stencil_cp_async(x["x"], x["taps"]),
        "torch_reference": stencil_reference,
    },
    bytes_moved=stencil_bytes,
    flops=stencil_flops,
    flops_dtype="fp32",
    requires=Requires(cuda=True, min_capability=(8, 0)),  # cp.async arrived with sm_80
)

if __name__ == "__main__":
    main(EXAMPLE)
