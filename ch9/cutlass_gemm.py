"""A bf16 GEMM through CUTLASS: the Ampere-style 2.x kernel vs the Hopper CUTLASS 3 kernel, cuBLAS beside them.

C = A @ B.T with A [M, K] and B [N, K] in bf16 (nn.Linear's layout: both operands K-major, as in
ch10/hopper_gemm.py), fp32 accumulation, bf16 C. The route is CUTLASS's C++ headers (the `nvidia-cutlass`
wheel, 6.4 MB, header-only; `// aisp: include cutlass` in a .cu puts them on nvcc's include path), not the
CuTe Python DSL (its CUDA 13 libraries are a 92 MB wheel): two template instantiations, one per .cu file in
ch9/cutlass_kernels/ (the Hopper one about a minute of nvcc, the 2.x one seconds).
  - baseline `cutlass2_sm80`: `cutlass::gemm::device::Gemm`, the Ampere design (128x256x64 block tile,
    mma.sync m16n8k16, 3-stage cp.async ring). It runs on any GPU from sm_80 on; on Hopper it is what a
    portable tensor-core kernel gets. ch9's own WMMA kernel would be a strawman against a library kernel.
  - optimized `cutlass3_sm90_tma_ws`: CUTLASS 3's CollectiveBuilder for sm_90a: TMA loads, wgmma, a
    warp-specialized "cooperative" persistent kernel (a producer warpgroup issuing TMA, two consumer
    warpgroups on one 128x256 tile), clusters of 2 along M with the shared B tile multicast, TMA-store
    epilogue. The ideas ch10/hopper_gemm.py builds by hand, assembled by the library. Compute capability
    9.0 only.
  - reference `torch_matmul_bf16`: cuBLAS (`a @ b.T`). Claim: CUTLASS 3 within 10% of it (targets.toml).
Both CUTLASS kernels need K and N to be multiples of 8 (16-byte rows for TMA and cp.async); other shapes
(the `ragged` distribution) are zero-padded to them here, which costs a copy of A and B and is only
verified, not the timed case. Tolerance as in ch10 (rtol 1.6e-2, atol 3e-2; see its docstring).

Bound: 2*8192^3 = 1.1 TFLOP at full size: 1.4-1.6 ms at the H200's ~700-790 TFLOP/s dense bf16 peak
(benchmark_peak.py); bytes, 384 MiB once each, 0.08 ms at 4.8 TB/s: compute-bound by 20x. mma.sync on
Hopper is expected well under the wgmma peak (a warp's instruction with operands staged through registers,
no TMA to overlap loads with math): the gap the baseline is there to measure.
"""
import torch
import torch.nn.functional as F

from ch9.cutlass_kernels import ALIGN, gemm
from harness import Example, Requires, Variant, main

SHAPES = {"tiny": (256, 512, 128), "small": (2048, 2048, 2048), "full": (8192, 8192, 8192)}
RAGGED = (37, 77, 51)  # tiles cut at every edge; N and K not multiples of 8: the padded path
HEADERS = ("cutlass_library",)  # the nvidia-cutlass wheel's package; without it the kernels cannot be built
HOPPER = Requires(min_capability=(9, 0), max_capability=(9, 0), packages=HEADERS)  # sm_90a code


def shape(size: str, dist: str = "aligned") -> tuple[int, int, int]:
    m, n, k = SHAPES[size]
    if dist == "ragged":
        m, n, k = m - RAGGED[0], n - RAGGED[1], k - RAGGED[2]
    return m, n, k


def setup(size, device, seed, dist="aligned"):
    m, n, k = shape(size, dist)
    g = torch.Generator(device=device).manual_seed(seed)
    scale = k ** -0.25  # entries of C ~ N(0, 1), so the bf16 tolerance means the same at every size
    a = (torch.randn(m, k, device=device, generator=g) * scale).to(torch.bfloat16)
    b = (torch.randn(n, k, device=device, generator=g) * scale).to(torch.bfloat16)
    return {"a": a, "b": b}


def padded(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A and B with K and N zero-padded up to multiples of 8 (zeros add nothing to the dot products)."""
    k, n = a.shape[1], b.shape[0]
    pad_k, pad_n = -k % ALIGN, -n % ALIGN
    if pad_k or pad_n:
        a, b = F.pad(a, (0, pad_k)), F.pad(b, (0, pad_k, 0, pad_n))
    return a, b


def kernel(name):
    def run(x):
        a, b = padded(x["a"], x["b"])
        c = gemm(name, a, b)
        n = x["b"].shape[0]
        return c if c.shape[1] == n else c[:, :n].contiguous()
    return run


def flops(x):
    (m, k), n = x["a"].shape, x["b"].shape[0]
    return 2 * m * n * k


EXAMPLE = Example(
    title="bf16 GEMM through CUTLASS: 2.x mma.sync (Ampere design) vs 3.x TMA + wgmma warp-specialized, vs cuBLAS",
    setup=setup,
    baseline=Variant(kernel("gemm_sm80"), requires=Requires(min_capability=(8, 0), packages=HEADERS),
                     note="CUTLASS 2.x device::Gemm, 128x256x64, mma.sync, 3-stage cp.async (sm_80 design)"),
    baseline_name="cutlass2_sm80",
    optimized={"cutlass3_sm90_tma_ws": Variant(
        kernel("gemm_sm90"), requires=HOPPER,
        note="CUTLASS 3 CollectiveBuilder: TMA + wgmma, warp-specialized cooperative persistent, 128x256x64, cluster 2x1")},
    tolerance=(1.6e-2, 3e-2),
    references={"torch_matmul_bf16": Variant(lambda x: x["a"] @ x["b"].T, note="cuBLAS bf16 (TN)")},
    bytes_moved=lambda x: 2 * (x["a"].numel() + x["b"].numel() + x["a"].shape[0] * x["b"].shape[0]),
    flops=flops,
    flops_dtype="bf16",
    distributions=("aligned", "ragged"),
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
