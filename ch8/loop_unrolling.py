"""Loop unrolling: a polynomial with a run-time degree vs the same with a compile-time degree.

y = P(x) on bf16 data, P of degree 32 evaluated by Horner's rule in fp32. With the degree a run-time
argument, the loop cannot be fully unrolled, and since registers cannot be indexed by a run-time
value the coefficients stay in memory: every term of every element costs a load (an L1 hit) plus the
loop's counter and branch. With the degree a template constant, #pragma unroll makes the loop
straight-line code, the 33 coefficients sit in registers for the whole grid-stride loop, and each
term is one FMA. `torch_horner` is the same evaluation in PyTorch eager, in fp32, for reference.

Bound: full size moves 256 MiB (about 64 us at the H200's measured 4.2 TB/s copy bandwidth) and does
2 x 32 flops per element, 4.3 GFLOP (about 84 us at the H200's measured 51 TFLOP/s FP32): 16 flops per
byte, on the compute side of the roofline. Neither kernel reaches that ceiling: each thread loads one
element per loop iteration and waits for it before its 32 dependent FMAs, so the load latency is not
overlapped with the arithmetic (more elements per thread would fix that, and is Chapter 8's ILP lesson,
kept out of this comparison so that it shows unrolling alone).
"""
import torch

from ch8.kernels import ext
from harness import Example, Requires, Variant, main

DEGREE = 32  # kPolyDegree in kernels/poly.cuh (the binding checks the coefficient count)
N = {"tiny": 1000, "small": 1 << 22, "full": 1 << 26}  # bf16 elements; full: 128 MB in, 128 MB out


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    coeffs = torch.randn(DEGREE + 1, device=device, generator=g) / torch.arange(1, DEGREE + 2, device=device)
    x = (torch.rand(N[size], device=device, generator=g) * 2 - 1).to(torch.bfloat16)
    return {"x": x, "coeffs": coeffs, "coeffs_list": coeffs.tolist()}


def horner(u, coeffs):
    """c[0] + u * (c[1] + u * (... + u * c[-1])), in the dtype of u."""
    acc = torch.full_like(u, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = acc * u + c
    return acc


EXAMPLE = Example(
    title="Polynomial (degree 32): run-time degree loop vs compile-time unrolled",
    setup=setup,
    baseline=lambda x: ext().poly_runtime_degree(x["x"], x["coeffs"]),
    baseline_name="runtime_degree",
    optimized={"fixed_degree_unrolled": Variant(
        lambda x: ext().poly_fixed_degree(x["x"], x["coeffs"]),
        note="compute-bound; one element per thread per iteration leaves load latency exposed")},
    references={"torch_horner": lambda x: horner(x["x"].float(), x["coeffs_list"]).to(torch.bfloat16)},
    bytes_moved=lambda x: 2 * 2 * x["x"].numel(),
    flops=lambda x: 2 * DEGREE * x["x"].numel(),
    flops_dtype="fp32",
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
