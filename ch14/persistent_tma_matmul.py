"""A persistent bf16 GEMM that loads its tiles through Hopper TMA descriptors.

Two changes to the tiled GEMM of matmul_autotune.py, both about what the SMs do besides multiplying:
- TMA: a tensor descriptor (base, shape, strides, block shape; built on the host with
  `TensorDescriptor.from_tensor`) lets one thread ask the Tensor Memory Accelerator for a whole
  BLOCK x BLOCK tile; the hardware computes the addresses, clips at the matrix edge (zero fill on load,
  nothing written past it on store) and lands the tile in shared memory, with no address arithmetic or
  masks in the kernel and no registers spent on them.
- Persistence: the grid is one program per SM; each walks the output tiles tile, tile + #SMs, ... in
  the grouped order, so there is no wave quantization tail of half-empty waves and no launch per tile,
  and the next tile's loads can start while the previous tile's result is still being stored.

Baseline: the non-persistent, pointer-based kernel of matmul_autotune.py with the same tile shape,
warps and stages, so the difference is TMA + persistence alone. Reference: cuBLAS (`torch.mm`).

Bound: full size is 8192^3 bf16, 1.1 TFLOP: about 1.4 ms at the H200's measured ~790 TFLOP/s.
Needs sm_90+ compiled (TMA); the interpreter emulates descriptors, so it also runs on the CPU at tiny
size, there with the operands upcast to fp32 before the dot (the interpreter's bf16 dot is wrong).
"""
import torch  # noqa: I001 (ch14.triton_runtime must come before triton)

from ch14.triton_runtime import INTERPRET, TRITON, triton_requires  # before triton
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from ch14.matmul_autotune import gemm_bytes, gemm_flops, grouped_tile, matmul_kernel, setup
from harness import Example, Variant, main

# One tile configuration for both kernels: 128 x 256 x 64, two warpgroups, 3 stages (144 KiB of A and B
# tiles in flight, plus a 64 KiB C tile for the TMA store: within the H200's 227 KiB of shared memory).
GPU_TILE = {"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8, "num_warps": 8, "num_stages": 3}
CPU_TILE = {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 2, "num_warps": 4, "num_stages": 1}
TILE = CPU_TILE if INTERPRET else GPU_TILE


@triton.jit
def persistent_tma_kernel(a_desc, b_desc, c_desc, M, N, K, NUM_PROGRAMS: tl.constexpr, BLOCK_M: tl.constexpr,
                          BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                          UPCAST: tl.constexpr):
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    k_steps = tl.cdiv(K, BLOCK_K)
    # flatten: the compiler pipelines across the tile boundary (the next tile's first loads overlap this one's end)
    for tile in tl.range(tl.program_id(0), tiles_m * tiles_n, NUM_PROGRAMS, flatten=True):
        pid_m, pid_n = grouped_tile(tile, tiles_m, tiles_n, GROUP_M)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(k_steps):
            a = a_desc.load([pid_m * BLOCK_M, k * BLOCK_K])      # one TMA request per tile, zero-filled past K
            b = b_desc.load([k * BLOCK_K, pid_n * BLOCK_N])
            if UPCAST:  # the interpreter's bf16 dot is wrong; compiled code never takes this branch
                a, b = a.to(tl.float32), b.to(tl.float32)
            acc = tl.dot(a, b, acc)
        c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], acc.to(c_desc.dtype))


def _programs(device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4


def persistent_tma(inputs):
    a, b = inputs["a"], inputs["b"]
    (m, k), n = a.shape, b.shape[1]
    c = torch.empty(m, n, device=a.device, dtype=torch.bfloat16)
    bm, bn, bk = TILE["BLOCK_M"], TILE["BLOCK_N"], TILE["BLOCK_K"]
    a_desc = TensorDescriptor.from_tensor(a, [bm, bk])
    b_desc = TensorDescriptor.from_tensor(b, [bk, bn])
    c_desc = TensorDescriptor.from_tensor(c, [bm, bn])
    programs = min(_programs(a.device), triton.cdiv(m, bm) * triton.cdiv(n, bn))
    persistent_tma_kernel[(programs,)](a_desc, b_desc, c_desc, m, n, k, NUM_PROGRAMS=programs, UPCAST=INTERPRET,
                                       **TILE)
    return c


def tiled_pointers(inputs):
    a, b = inputs["a"], inputs["b"]
    (m, k), n = a.shape, b.shape[1]
    c = torch.empty(m, n, device=a.device, dtype=torch.bfloat16)
    grid = (triton.cdiv(m, TILE["BLOCK_M"]) * triton.cdiv(n, TILE["BLOCK_N"]),)
    matmul_kernel[grid](a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0),
                        c.stride(1), UPCAST=INTERPRET, **TILE)
    return c


# no edge distributions: the accumulator is the GEMM's edge, and a narrower one already fails on these normal
# draws (bf16 partial sums put ~2% of elements past the bf16 tolerance at K = 64, ~17% at K = 256); all-positive
# inputs catch no more. Tile edges are the ragged sizes' job (matmul_autotune's shapes, not multiples of the tiles).
EXAMPLE = Example(
    title="bf16 GEMM: one program per tile with pointer loads vs persistent programs with TMA descriptors",
    setup=setup,
    baseline=Variant(tiled_pointers, requires=TRITON),
    baseline_name="tiled_pointers",
    optimized={"persistent_tma": Variant(persistent_tma, requires=triton_requires(min_capability=(9, 0)),
                                         note="TMA descriptors need sm_90+ compiled; the interpreter emulates them")},
    references={"torch_mm": lambda inputs: torch.mm(inputs["a"], inputs["b"])},
    flops=gemm_flops,
    flops_dtype="bf16",
    bytes_moved=gemm_bytes,
)

if __name__ == "__main__":
    main(EXAMPLE)
