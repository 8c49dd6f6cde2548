"""An FP8 (e4m3) GEMM with per-tensor scales in Triton, against `torch._scaled_mm`.

C = (A_q @ B_q^T) * scale_a * scale_b in bf16, where A_q and B_q hold e4m3 values (4 exponent bits, 3
mantissa bits, largest 448) and each scale is one fp32 number per tensor (amax / 448, so the largest
element lands at the top of e4m3's range). Hopper's tensor cores multiply e4m3 at twice the bf16 rate
and the operands are half the bytes; the kernel accumulates in fp32 and applies both scales once, to
the accumulator, in the epilogue: scaling is free, a per-tensor scale commutes with the dot product.

B is stored N x K (each output column's K values contiguous), the layout fp8 tensor-core operands need
and the one `torch._scaled_mm` takes (as `b.t()`). Baseline: what one does without FP8 kernels:
convert both operands to bf16 (exact), call the bf16 GEMM (cuBLAS) and scale its result. Reference: `torch._scaled_mm`
(cuBLASLt's FP8 GEMM). Goal: >= 0.8x `torch._scaled_mm` (targets.toml).

Bound: full size is 8192^3, 1.1 TFLOP at the H200's measured ~1330 TFLOP/s fp8: about 0.83 ms.
GPU-only compiled (e4m3 tensor cores need sm_89+); in the interpreter the operands are upcast to fp32.
"""
import torch  # noqa: I001 (ch14.triton_runtime must come before triton)

from ch14.triton_runtime import INTERPRET, triton_requires  # before triton
import triton
import triton.language as tl

from ch14.matmul_autotune import SHAPES, grouped_tile
from harness import Example, Requires, Variant, main

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0


def _quantize(x):
    scale = x.abs().amax().float() / E4M3_MAX
    return (x / scale).to(E4M3), scale


def setup(size, device, seed):
    m, n, k = SHAPES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    spread = k ** -0.25   # entries of C ~ N(0, 1), so the bf16 tolerance means the same at every size
    a, scale_a = _quantize(torch.randn(m, k, device=device, generator=g) * spread)
    b, scale_b = _quantize(torch.randn(n, k, device=device, generator=g) * spread)
    return {"a": a, "b": b, "scale_a": scale_a, "scale_b": scale_b}


@triton.jit
def fp8_matmul_kernel(a_ptr, b_ptr, c_ptr, scale_a_ptr, scale_b_ptr, M, N, K, stride_am, stride_bn, stride_cm,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                      UPCAST: tl.constexpr):
    pid_m, pid_n = grouped_tile(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + offs_m[:, None].to(tl.int64) * stride_am + offs_k[None, :]
    b_ptrs = b_ptr + offs_n[None, :].to(tl.int64) * stride_bn + offs_k[:, None]   # a K x N view of N x K memory
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K
        a = tl.load(a_ptrs, mask=(offs_m[:, None] < M) & (offs_k[None, :] < k_left), other=0.0)
        b = tl.load(b_ptrs, mask=(offs_k[:, None] < k_left) & (offs_n[None, :] < N), other=0.0)
        if UPCAST:  # the interpreter's low-precision dot is wrong; compiled code never takes this branch
            a, b = a.to(tl.float32), b.to(tl.float32)
        acc = tl.dot(a, b, acc)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K
    acc *= tl.load(scale_a_ptr) * tl.load(scale_b_ptr)   # both per-tensor scales, once, on the accumulator
    c_ptrs = c_ptr + offs_m[:, None].to(tl.int64) * stride_cm + offs_n[None, :]
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


def _config(bm, bn, bk, warps, stages, group=8):
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": group},
                         num_warps=warps, num_stages=stages)


# fp8 halves the bytes per element: K steps of 128 keep the same shared-memory tile bytes as bf16's 64.
GPU_CONFIGS = [
    _config(128, 256, 128, 8, 3),
    _config(128, 256, 128, 8, 4),
    _config(256, 128, 128, 8, 3),
    _config(128, 128, 128, 4, 4),
    _config(128, 128, 128, 8, 4),
    _config(64, 256, 128, 4, 4),
]
CONFIGS = [_config(32, 32, 32, 4, 1)] if INTERPRET else GPU_CONFIGS
fp8_matmul_autotuned = triton.autotune(configs=CONFIGS, key=["M", "N", "K"])(fp8_matmul_kernel)


def triton_fp8(inputs):
    a, b = inputs["a"], inputs["b"]
    (m, k), n = a.shape, b.shape[0]
    c = torch.empty(m, n, device=a.device, dtype=torch.bfloat16)
    grid = lambda opts: (triton.cdiv(m, opts["BLOCK_M"]) * triton.cdiv(n, opts["BLOCK_N"]),)  # noqa: E731
    fp8_matmul_autotuned[grid](a, b, c, inputs["scale_a"], inputs["scale_b"], m, n, k, a.stride(0), b.stride(0),
                               c.stride(0), UPCAST=INTERPRET)
    return c


def dequantize_bf16_mm(inputs):
    # e4m3 -> bf16 is exact; the scales go on after the GEMM (a scaled operand would not fit in bf16's 8 bits)
    a, b = inputs["a"].to(torch.bfloat16), inputs["b"].to(torch.bfloat16)
    scale = inputs["scale_a"] * inputs["scale_b"]
    return (torch.mm(a, b.t()).float() * scale).to(torch.bfloat16)


def scaled_mm(inputs):
    return torch._scaled_mm(inputs["a"], inputs["b"].t(), inputs["scale_a"], inputs["scale_b"],
                            out_dtype=torch.bfloat16)


def fp8_flops(inputs):
    (m, k), n = inputs["a"].shape, inputs["b"].shape[0]
    return 2 * m * n * k


def fp8_bytes(inputs):
    """A and B read once (1 byte each), C written once (bf16)."""
    (m, k), n = inputs["a"].shape, inputs["b"].shape[0]
    return m * k + n * k + 2 * m * n


# no edge distributions: the inputs are already e4m3 with amax at 448 (every draw reaches the top of the
# format), the products are exact in fp32, and a narrower accumulator already fails on these draws (fp16:
# entries of ~120 make sums of ~1.4e4 x sqrt(K), past its 65504; bf16: errors of ~sqrt(K) ulps). Scales far
# from 1 would underflow scale_a * scale_b in the baseline's own fp32 product before any kernel's.
EXAMPLE = Example(
    title="FP8 e4m3 GEMM with per-tensor scales: dequantize + bf16 cuBLAS vs Triton FP8 (torch._scaled_mm for reference)",
    setup=setup,
    baseline=dequantize_bf16_mm,
    baseline_name="dequant_bf16_mm",
    optimized={"triton_fp8": Variant(triton_fp8, requires=triton_requires(min_capability=(8, 9)),
                                     note="autotuned over %d configurations at the first call" % len(CONFIGS))},
    references={"torch_scaled_mm": Variant(scaled_mm, requires=Requires(cuda=True, min_capability=(8, 9)),
                                           note="cuBLASLt FP8 GEMM")},
    flops=fp8_flops,
    flops_dtype="fp8",
    # The baseline rounds the unscaled sums to bf16 (and cuBLAS may reduce split-K partials in bf16); the fp8
    # kernels keep fp32 to the end: a few bf16 ulps of |C| ~ 1 apart (as ch10/hopper_gemm)
    tolerance=(1.6e-2, 3e-2),
    bytes_moved=fp8_bytes,
)

if __name__ == "__main__":
    main(EXAMPLE)
