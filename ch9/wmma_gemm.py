"""Tensor cores from CUDA C++: a bf16 GEMM with WMMA vs the same tiling on the FMA units.

C = A @ B with bf16 inputs, fp32 accumulation and a bf16 result. The baseline is this chapter's best SIMT
kernel (sgemm.cu's 128x128x8 register-tiled design) reading bf16 and multiplying in fp32 on the FFMA units;
the optimized kernel keeps the same block tile (128x128, K in steps of 32, double-buffered shared memory) and
hands the math to the tensor cores through `nvcuda::wmma` 16x16x16 fragments (HMMA instructions; sm_80+).
cuBLAS bf16 (`torch.mm` on bf16 tensors) is the reference. On Hopper, cuBLAS uses wgmma, TMA and
warp-specialized pipelines (Chapter 10), which WMMA cannot reach: the lesson here is the jump from FMA
units to tensor cores, not parity with cuBLAS.

Bound: 2*4096^3 = 137 GFLOP at full size: 0.18-0.2 ms at the H200's measured ~700-790 TFLOP/s bf16 dense
peak (the SIMT baseline's own ceiling is the 51 TFLOP/s FMA peak: 2.7 ms); bytes, 96 MiB once each, 24 us.
"""
import torch

from ch9.kernels import ext
from ch9.sgemm_tiling import shape
from harness import Example, Requires, Variant, main


def setup(size, device, seed, dist="aligned"):
    m, n, k = shape(size, dist)
    g = torch.Generator(device=device).manual_seed(seed)
    scale = k ** -0.25  # entries of C ~ N(0, 1)
    a = (torch.randn(m, k, device=device, generator=g) * scale).to(torch.bfloat16)
    b = (torch.randn(k, n, device=device, generator=g) * scale).to(torch.bfloat16)
    return {"a": a, "b": b}


def flops(x):
    (m, k), n = x["a"].shape, x["b"].shape[1]
    return 2 * m * n * k


EXAMPLE = Example(
    title="bf16 GEMM: SIMT FMA register tiles vs WMMA tensor cores",
    setup=setup,
    baseline=lambda x: ext().gemm_bf16_simt(x["a"], x["b"]),
    baseline_name="simt_register_tiles",
    optimized={"wmma": Variant(lambda x: ext().gemm_bf16_wmma(x["a"], x["b"]),
                               requires=Requires(min_capability=(8, 0)),
                               note="16x16x16 bf16 fragments, 128x128x32 block tile, 8 warps of 64x32")},
    references={"torch_mm_bf16": Variant(lambda x: torch.mm(x["a"], x["b"]), note="cuBLAS bf16")},
    bytes_moved=lambda x: 2 * (x["a"].numel() + x["b"].numel() + x["a"].shape[0] * x["b"].shape[1]),
    flops=flops,
    flops_dtype="bf16",
    distributions=("aligned", "ragged"),
    requires=Requires(cuda=True),  # the baseline is a CUDA kernel
)

if __name__ == "__main__":
    main(EXAMPLE)
