"""fp32 GEMM by tiling level: naive -> shared-memory tiles -> 8x8 register micro-tiles -> float4 loads.

C = A @ B in fp32 with fp32 FMAs (no TF32 anywhere). Each level raises the arithmetic intensity of the
traffic the SMs see: the naive kernel does one FMA per two loads (from L1/L2); 32x32 shared tiles cut the
global loads 32-fold, but each FMA still reads two shared-memory words; a thread holding an 8x8 block of C in
registers does 64 FMAs per 16 shared-memory words, which moves the limit from the load pipes to the FMA
units; float4 global loads and a double-buffered shared tile then hide the tile loads behind the math. The
design (128x128x8 block tile, 256 threads, 8x8 outputs per thread, A transposed in shared memory) is the
classic one of SGEMM write-ups; every kernel checks bounds, and the `ragged` distribution (M, N, K not
multiples of 4 or of the tiles) checks that at every size (the vec4 launcher falls back to scalar loads there).

The naive kernel is a labelled teaching baseline: nobody ships it, but the ladder starts there and its
speedups are kept out of headlines. The figure that matters is `speedup_vs_reference`: the register-tiled,
vectorized kernel against cuBLAS fp32 (`torch.mm` with TF32 off, set and restored inside the call); the
project's claim is >= 0.7x. cuBLAS also reaches for larger tiles, warp-level tiling and SASS tuned per GPU.

Bound: 2*4096^3 = 137 GFLOP at full size: 2.7 ms at the H200's measured 51 TFLOP/s fp32 (FMA) peak; the
bytes (192 MiB once each) would take 48 us, so every level is compute- or issue-bound, never DRAM-bound.
"""
import torch

from ch9.kernels import ext
from harness import Example, Requires, Variant, main

SHAPES = {"tiny": (64, 64, 64), "small": (1024, 1024, 1024), "full": (4096, 4096, 4096)}  # (M, N, K)
RAGGED = (3, 5, 7)  # taken off each of M, N, K by the `ragged` distribution


def shape(size: str, dist: str = "aligned") -> tuple[int, int, int]:
    m, n, k = SHAPES[size]
    if dist == "ragged":
        m, n, k = m - RAGGED[0], n - RAGGED[1], k - RAGGED[2]
    return m, n, k


def setup(size, device, seed, dist="aligned"):
    m, n, k = shape(size, dist)
    g = torch.Generator(device=device).manual_seed(seed)
    scale = k ** -0.25  # entries of C ~ N(0, 1) whatever K is, so the fp32 tolerance means the same at every size
    a = torch.randn(m, k, device=device, generator=g) * scale
    b = torch.randn(k, n, device=device, generator=g) * scale
    return {"a": a, "b": b}


def torch_mm_fp32(x):
    """cuBLAS SGEMM: TF32 off for this call only (the setting is global, so it is restored whatever happens)."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return torch.mm(x["a"], x["b"])
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def kernel(name):
    return lambda x: getattr(ext(), name)(x["a"], x["b"])


def flops(x):
    (m, k), n = x["a"].shape, x["b"].shape[1]
    return 2 * m * n * k


EXAMPLE = Example(
    title="fp32 GEMM by tiling level: naive, shared-memory tiles, 8x8 register tiles, float4 loads",
    setup=setup,
    baseline=kernel("sgemm_naive"),
    baseline_name="naive",
    teaching_baseline=True,
    optimized={
        "smem_tiles": Variant(kernel("sgemm_smem"), teaching=True,
                              note="32x32 shared tiles, one output per thread: two shared loads per FMA"),
        "register_tiles": Variant(kernel("sgemm_regtile"), teaching=True,
                                  note="128x128x8 block tile, 8x8 outputs per thread, scalar global loads"),
        "register_tiles_vec4": Variant(kernel("sgemm_regtile_vec4"),
                                       note="float4 global loads, double-buffered shared tile (scalar loads "
                                            "where K or N is not a multiple of 4)"),
    },
    references={"torch_mm_fp32": Variant(torch_mm_fp32, note="cuBLAS SGEMM, TF32 off")},
    bytes_moved=lambda x: 4 * (x["a"].numel() + x["b"].numel() + x["a"].shape[0] * x["b"].shape[1]),
    flops=flops,
    flops_dtype="fp32",
    distributions=("aligned", "ragged"),
    requires=Requires(cuda=True),  # the baseline is a CUDA kernel
)

if __name__ == "__main__":
    main(EXAMPLE)
