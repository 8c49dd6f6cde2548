"""Bulk asynchronous copy on sm_90 (cp.async.bulk + mbarrier, the TMA's 1D form) vs plain loads.

The stencil of cp_async_prefetch.py again. Here one thread per block issues a single bulk copy for the
next tile's whole span, the Tensor Memory Accelerator moves it into shared memory, and an mbarrier
counts the bytes as they land; the block waits on that barrier only when it needs the tile. The other
threads spend no instructions on addresses or copies. Needs sm_90 or newer.
"""
from ch7.cp_async_prefetch import setup, stencil_bytes, stencil_flops, stencil_reference
from ch7.kernels import ext
from harness import Example, Requires, main

EXAMPLE = Example(
    title="17-point stencil: plain loads vs cp.async.bulk (TMA) double-buffered prefetch",
    setup=setup,
    baseline=lambda x: ext().stencil_plain(x["x"], x["taps"]),
    baseline_name="plain_loads",
    optimized={
        "bulk_copy": lambda x: ext().stencil_bulk_copy(x["x"], x["taps"]),
        "torch_reference": stencil_reference,
    },
    bytes_moved=stencil_bytes,
    flops=stencil_flops,
    flops_dtype="fp32",
    requires=Requires(cuda=True, min_capability=(9, 0)),
)

if __name__ == "__main__":
    main(EXAMPLE)
