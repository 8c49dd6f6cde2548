"""Warp divergence: a branchy threshold kernel vs a predicated one.

A piecewise function around a threshold: y = gain * P(scale * (x - t)), where (gain, scale) is one
pair below t and another above, and P a degree-32 polynomial (enough arithmetic per element that
instructions, not memory, set the time). The branchy kernel writes it as if/else; with random data
almost every warp has elements on both sides, so it runs both branches one after the other with half
its lanes idle each time: two polynomials per element. The predicated kernel selects (gain, scale)
with conditional moves and evaluates one polynomial: no branch, no idle lanes, same result.
`torch_where` is the same function in PyTorch eager (both sides, then torch.where), for reference.

Distributions: `normal`; `at_threshold` (every fourth element exactly t: above-or-equal is not above, and
a select written `x >= t` takes the wrong side there, which no random bf16 draw hits).

Bound: full size moves 256 MiB (about 64 us at the H200's measured 4.2 TB/s copy bandwidth) and needs at
least one polynomial per element, 4.3 GFLOP (about 84 us at the H200's measured 51 TFLOP/s FP32): on the
compute side of the roofline. As in loop_unrolling.py, one element per thread per iteration leaves the
load latency exposed, so neither kernel reaches that ceiling; the comparison is about divergence alone.
"""
import torch

from ch8.kernels import ext
from ch8.loop_unrolling import DEGREE, horner
from harness import Example, Requires, Variant, main

N = {"tiny": 1000, "small": 1 << 22, "full": 1 << 26}  # bf16 elements; full: 128 MB in, 128 MB out
THRESHOLD = 0.0  # half the elements on each side, scattered at random: maximal divergence


def setup(size, device, seed, dist="normal"):
    g = torch.Generator(device=device).manual_seed(seed)
    k_factorial = torch.lgamma(torch.arange(DEGREE + 1, device=device, dtype=torch.float32) + 1).exp()
    coeffs = torch.randn(DEGREE + 1, device=device, generator=g) / k_factorial  # P is a perturbed exp()
    cpu = torch.Generator().manual_seed(seed)
    scale_lo, scale_hi = (0.2 + 0.3 * torch.rand(2, generator=cpu)).tolist()
    gain_lo, gain_hi = (torch.rand(2, generator=cpu) * 2 - 1).tolist()
    x = torch.randn(N[size], device=device, generator=g).to(torch.bfloat16)
    if dist == "at_threshold":
        x[::4] = THRESHOLD                                # ties: the predicate must be v > t, as the branch's
    return {"x": x, "coeffs": coeffs,
            "coeffs_list": coeffs.tolist(), "sides": (THRESHOLD, scale_lo, gain_lo, scale_hi, gain_hi)}


def torch_where(x):
    t, scale_lo, gain_lo, scale_hi, gain_hi = x["sides"]
    v = x["x"].float()
    lo = gain_lo * horner(scale_lo * (v - t), x["coeffs_list"])
    hi = gain_hi * horner(scale_hi * (v - t), x["coeffs_list"])
    return torch.where(v > t, hi, lo).to(torch.bfloat16)


EXAMPLE = Example(
    title="Piecewise polynomial: branchy (divergent warps) vs predicated",
    setup=setup,
    baseline=lambda x: ext().piecewise_branchy(x["x"], x["coeffs"], *x["sides"]),
    baseline_name="branchy",
    optimized={"predicated": Variant(
        lambda x: ext().piecewise_predicated(x["x"], x["coeffs"], *x["sides"]),
        note="compute-bound; one element per thread per iteration leaves load latency exposed")},
    references={"torch_where": torch_where},
    bytes_moved=lambda x: 2 * 2 * x["x"].numel(),
    flops=lambda x: 2 * DEGREE * x["x"].numel(),  # one polynomial per element, the least it takes
    flops_dtype="fp32",
    requires=Requires(cuda=True),
    distributions=("normal", "at_threshold"),
)

if __name__ == "__main__":
    main(EXAMPLE)
