"""Strassen's algorithm, one level, as a GEMM: seven half-size cuBLAS products instead of eight.

The lesson of AlphaTensor's object (ch20/alphatensor.py): a rank-7 decomposition of the 2x2x2 matmul
tensor saves 1/8 of the multiplications, but on a GPU the multiplications are tensor-core GEMMs running
near peak, and what Strassen adds is memory traffic: 10 block sums of the inputs (each a read of two
h x h blocks and a write of one), the seven products written in float32, and 12 block updates of C.
At n = 4096 (h = 2048) in bf16: 7 * 2 * 2048^3 = 120 GFLOP, about 0.15 ms at ~800 TFLOP/s, plus roughly
18 passes over 2048^2 blocks of 2-4 bytes, ~0.5 GB, about 0.12 ms at 4.2 TB/s: the saving (1/8 of
0.17 ms) is smaller than the added traffic, so expect it to lose to one cuBLAS call (`torch_matmul`,
the reference). The baseline is the same one-level blocking with all eight products (the trivial
rank-8 decomposition), so optimized vs baseline isolates what the rank-7 algebra buys.

Accuracy: Strassen's error bound is normwise, not elementwise. Each of the seven products is rounded to
bf16 at a larger magnitude (|(A11 + A22)(B11 + B22)| is twice |A11 B11|) and four of them are summed per
block, so in bf16 its relative L2 error is about 3x that of the plain product (0.55% vs 0.17% at n = 1024
on the CPU), and single elements differ from the rank-8 result by up to 2 at n = 2048 and 4 at n = 4096
(mean |C| 36 and 51; measured on the CPU). Hence the tolerance below: rtol 2e-2 with atol 6 (about 12%
of the mean |C| at 4096), which checks the algorithm, not the last bits: a wrong one (a corrupted factor)
is off by about |C| in whole blocks and still fails.
"""
import torch

from ch20.alphatensor import apply, strassen, trivial
from harness import Example, main

SIZES = {"tiny": 64, "small": 1024, "full": 4096}
STRASSEN, RANK8 = strassen(), trivial(2, 2, 2)


def setup(size, device, seed):
    n = SIZES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"a": torch.randn(n, n, device=device, generator=g).to(dtype),
            "b": torch.randn(n, n, device=device, generator=g).to(dtype)}


def blocked_rank8(inputs):
    a, b = inputs["a"], inputs["b"]
    return apply(RANK8, a, b, acc_dtype=torch.float32).to(a.dtype)


def strassen_one_level(inputs):
    a, b = inputs["a"], inputs["b"]
    return apply(STRASSEN, a, b, acc_dtype=torch.float32).to(a.dtype)


EXAMPLE = Example(
    title="Strassen one level (7 block GEMMs) vs the same blocking with 8, and cuBLAS",
    setup=setup,
    baseline=blocked_rank8,
    baseline_name="blocked_rank8",
    optimized={"strassen_rank7": strassen_one_level},
    references={"torch_matmul": lambda inputs: inputs["a"] @ inputs["b"]},
    flops=lambda inputs: 2 * inputs["a"].shape[0] * inputs["a"].shape[1] * inputs["b"].shape[1],
    flops_dtype="bf16",
    tolerance=(2e-2, 6.0),
)

if __name__ == "__main__":
    main(EXAMPLE)
