// aisp: arch sm_100a
// The Blackwell (sm_100a) path of the Chapter 10 GEMM: C[M, N] = A[M, K] @ B[N, K]^T, bf16 in (both
// operands K-major, as in nn.Linear), fp32 accumulation in Tensor Memory (TMEM), bf16 out.
// COMPILED, NEVER RUN: no Blackwell GPU was at hand; every encoding below follows the PTX ISA (9.7.16,
// "TensorCore 5th Generation Family Instructions") and is cross-checked against public sm_100 kernels.
//
// What changes from the Hopper kernels (hopper_gemm.cu), with the same 128 x 256 x 64 block tile and the same
// TMA + 128-byte-swizzled shared memory:
//   - the accumulator lives in TMEM (128 lanes x 512 columns of 32-bit cells per SM), not in registers:
//     one warp allocates columns with tcgen05.alloc, and the 128 x 256 fp32 tile takes 256 of them;
//   - ONE thread issues the MMA (tcgen05.mma.cta_group::1.kind::f16, M = 128, N = 256, K = 16) for the whole
//     tile, where Hopper needed two warpgroups issuing wgmma; the MMA is asynchronous and its completion is
//     signalled by tcgen05.commit arriving on an mbarrier (this frees a shared-memory stage, or tells the
//     epilogue the tile is done);
//   - the epilogue reads the accumulator back with tcgen05.ld (warp w may read only TMEM lanes
//     32 * (w % 4) .. + 31), converts, and stores.
// Warp roles (192 threads): warp 0 issues TMA (one thread), warp 1 owns TMEM and issues MMAs (one thread),
// warps 2-5 are the epilogue (their w % 4 = 2, 3, 0, 1 cover the four lane quarters).
// Steps, one template:
//   0. tcgen05_1stage:  one shared-memory stage: TMA and the tensor core take turns
//   1. tcgen05_4stage:  a 4-deep ring of stages (full/empty mbarriers; tcgen05.commit frees a stage)
//   2. tcgen05_persistent: grid = #SMs looping over tiles, two TMEM accumulators (512 columns), so the
//      epilogue of one tile overlaps the MMAs of the next
// Not here: the 2-CTA MMA (cta_group::2, a cluster of 2 sharing B; M = 256 per instruction) and TMA
// multicast; the README says why.
#include <cuda.h>  // CUtensorMap and the cuTensorMapEncodeTiled prototype (types only: no -lcuda)
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "gemm_common.cuh"
#include "launchers.h"

namespace {

constexpr int BM = 128, BN = 256, BK = 64;
constexpr int STAGE_A_BYTES = BM * BK * 2, STAGE_B_BYTES = BN * BK * 2;
constexpr int STAGE_BYTES = STAGE_A_BYTES + STAGE_B_BYTES;  // 48 KiB
constexpr int THREADS = 192;  // warp 0 TMA, warp 1 TMEM + MMA, warps 2-5 epilogue

#if defined(__CUDA_ARCH_FEAT_SM100_ALL)
#define AISP_BLACKWELL 1
#endif

// The device code exists only in the sm_100a build; for other targets the kernels are empty, and the
// launchers refuse any GPU but compute capability 10.0 (cudaErrorInvalidDeviceFunction) before launching.
#ifdef AISP_BLACKWELL
constexpr int GROUP_M = 8;  // tile order: 8 tile-rows share each B column band while it is in L2
constexpr int MMA_K = 16;   // K of one kind::f16 instruction (32 bytes of bf16)
constexpr int EPILOGUE_THREADS = 128;

// Instruction descriptor, kind::f16 (PTX ISA "Instruction descriptor"): bits 4-5 D type (1 = f32),
// 7-9 A type (1 = bf16), 10-12 B type (1 = bf16), 15/16 transpose A/B (0 = K-major), 17-22 N >> 3,
// 24-28 M >> 4; dense, no negation, no saturation.
constexpr uint32_t IDESC_BF16_F32 = (1u << 4) | (1u << 7) | (1u << 10) | (uint32_t(BN >> 3) << 17) |
                                    (uint32_t(BM >> 4) << 24);
static_assert(BM == 128 && BN % 16 == 0 && BN <= 256, "cta_group::1 kind::f16 with M = 128 needs N % 16 == 0, N <= 256");



// ---- TMEM: allocation by one whole warp; the address (lane << 16 | column) is written to shared memory ----
__device__ __forceinline__ void tmem_alloc(uint32_t* slot, uint32_t columns) {
  asm volatile("tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%0], %1;" ::"r"(smem_u32(slot)),
               "r"(columns)
               : "memory");
}
// This CTA allocates no more: a CTA waiting in tcgen05.alloc on the same SM need not wait for our exit.
__device__ __forceinline__ void tmem_relinquish_alloc_permit() {
  asm volatile("tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void tmem_dealloc(uint32_t taddr, uint32_t columns) {
  asm volatile("tcgen05.dealloc.cta_group::1.sync.aligned.b32 %0, %1;" ::"r"(taddr), "r"(columns) : "memory");
}
// Order tcgen05 operations against thread synchronization (bar.sync, mbarrier): "before" ahead of the
// signal, "after" behind the wait (PTX ISA: tcgen05 memory consistency).
__device__ __forceinline__ void tcgen05_fence_before() { asm volatile("tcgen05.fence::before_thread_sync;" ::: "memory"); }
__device__ __forceinline__ void tcgen05_fence_after() { asm volatile("tcgen05.fence::after_thread_sync;" ::: "memory"); }

// Shared-memory matrix descriptor for tcgen05 (PTX ISA "Shared memory descriptor"): bits 0-13 start
// address >> 4; 16-29 leading-dimension byte offset >> 4 (unused by K-major swizzled layouts: 1 by
// convention); 32-45 stride-dimension byte offset >> 4 (1024: one 8-row x 128-byte swizzle atom to the
// next); 46-48 the fixed constant 0b001 (new on sm_100); 49-51 base offset 0 (tiles are 1024-byte aligned);
// 52 relative LBO mode; 61-63 swizzle mode 2 = 128-byte swizzle (Hopper's 2-bit field at 62-63 said 1).
__device__ __forceinline__ uint64_t smem_desc_sw128(const void* tile) {
  uint64_t desc = (smem_u32(tile) & 0x3FFFF) >> 4;
  desc |= uint64_t(16 >> 4) << 16;
  desc |= uint64_t(1024 >> 4) << 32;
  desc |= uint64_t(1) << 46;
  desc |= uint64_t(2) << 61;
  return desc;
}

// D[tmem] (+)= A[smem] * B[smem]^T for one 128 x 256 x 16 step, issued by a single thread.
__device__ __forceinline__ void mma_bf16(uint32_t d_tmem, uint64_t a_desc, uint64_t b_desc, uint32_t accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %4, 0;\n"
      "tcgen05.mma.cta_group::1.kind::f16 [%0], %1, %2, %3, p;\n"
      "}\n" ::"r"(d_tmem),
      "l"(a_desc), "l"(b_desc), "r"(IDESC_BF16_F32), "r"(accumulate)
      : "memory");
}
// The mbarrier gets one arrival once every tcgen05 operation this thread issued so far has completed.
__device__ __forceinline__ void mma_commit(uint64_t* bar) {
  asm volatile("tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%0];" ::"r"(smem_u32(bar))
               : "memory");
}

// 32 consecutive fp32 columns of this warp's 32 TMEM lanes (shape 32x32b, .x32: lane i -> thread i, one
// register per column). The wait is in the same statement, so no use of r can be scheduled before it.
__device__ __forceinline__ void tmem_load_32cols(uint32_t taddr, uint32_t (&r)[32]) {
  asm volatile(
      "tcgen05.ld.sync.aligned.32x32b.x32.b32 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, [%32];\n"
      "tcgen05.wait::ld.sync.aligned;\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]), "=r"(r[4]), "=r"(r[5]), "=r"(r[6]), "=r"(r[7]), "=r"(r[8]),
        "=r"(r[9]), "=r"(r[10]), "=r"(r[11]), "=r"(r[12]), "=r"(r[13]), "=r"(r[14]), "=r"(r[15]), "=r"(r[16]),
        "=r"(r[17]), "=r"(r[18]), "=r"(r[19]), "=r"(r[20]), "=r"(r[21]), "=r"(r[22]), "=r"(r[23]), "=r"(r[24]),
        "=r"(r[25]), "=r"(r[26]), "=r"(r[27]), "=r"(r[28]), "=r"(r[29]), "=r"(r[30]), "=r"(r[31])
      : "r"(taddr)
      : "memory");
}

__device__ __forceinline__ uint32_t pack_bf16x2(uint32_t lo, uint32_t hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(__uint_as_float(lo), __uint_as_float(hi));
  return *reinterpret_cast<uint32_t*>(&v);
}

// One thread's 32 columns of one row of C: four 16-byte stores where the row allows, else element by element.
__device__ __forceinline__ void store_row_chunk(const uint32_t (&r)[32], __nv_bfloat16* c, int m, int n, int row,
                                                int col0) {
  if (row >= m) return;
  __nv_bfloat16* out = c + int64_t(row) * n + col0;
  if (n % 8 == 0 && col0 + 32 <= n) {  // then out is 16-byte aligned (C from torch is)
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      uint4 v;
      v.x = pack_bf16x2(r[8 * q + 0], r[8 * q + 1]);
      v.y = pack_bf16x2(r[8 * q + 2], r[8 * q + 3]);
      v.z = pack_bf16x2(r[8 * q + 4], r[8 * q + 5]);
      v.w = pack_bf16x2(r[8 * q + 6], r[8 * q + 7]);
      reinterpret_cast<uint4*>(out)[q] = v;
    }
  } else {
#pragma unroll
    for (int j = 0; j < 32; ++j)
      if (col0 + j < n) out[j] = __float2bfloat16_rn(__uint_as_float(r[j]));
  }
}


__device__ __forceinline__ uint8_t* aligned_smem() {
  extern __shared__ uint8_t smem_raw[];
  return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
}
#endif  // AISP_BLACKWELL

// Barriers: full[s] (the producer's expect_tx arrival + TMA's bytes), empty[s] (one tcgen05.commit arrival:
// the MMAs that read stage s are done), acc_full[b] (one tcgen05.commit arrival: accumulator b holds a
// finished tile), acc_empty[b] (128 epilogue arrivals: accumulator b has been read out). Every wait is on the
// parity of the use count, as in hopper_gemm.cu.
template <int STAGES, bool PERSISTENT>
__global__ void __launch_bounds__(THREADS, 1)
    gemm_tcgen05(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                 __nv_bfloat16* c, int m, int n, int k) {
#ifdef AISP_BLACKWELL
  constexpr int ACC_BUFS = PERSISTENT ? 2 : 1;
  constexpr uint32_t TMEM_COLUMNS = ACC_BUFS * BN;  // 256 or 512: a power of two in [32, 512]
  uint8_t* smem = aligned_smem();
  auto* full = reinterpret_cast<uint64_t*>(smem + STAGES * STAGE_BYTES);
  uint64_t* empty = full + STAGES;
  uint64_t* acc_full = empty + STAGES;
  uint64_t* acc_empty = acc_full + 2;
  auto* tmem_slot = reinterpret_cast<uint32_t*>(acc_empty + 2);
  auto a_tile = [&](int s) { return reinterpret_cast<__nv_bfloat16*>(smem + s * STAGE_BYTES); };
  auto b_tile = [&](int s) { return reinterpret_cast<__nv_bfloat16*>(smem + s * STAGE_BYTES + STAGE_A_BYTES); };
  const int tiles_m = (m + BM - 1) / BM, tiles_n = (n + BN - 1) / BN, k_blocks = (k + BK - 1) / BK;
  const int tiles = tiles_m * tiles_n;
  const int first_tile = blockIdx.x, tile_step = PERSISTENT ? gridDim.x : tiles;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], 1);
    }
    for (int b = 0; b < 2; ++b) {
      mbar_init(&acc_full[b], 1);
      mbar_init(&acc_empty[b], EPILOGUE_THREADS);
    }
    fence_barrier_init();
  }
  if (warp == 1) {  // the whole warp: tcgen05.alloc is .sync.aligned
    tmem_alloc(tmem_slot, TMEM_COLUMNS);
    tmem_relinquish_alloc_permit();
  }
  tcgen05_fence_before();
  __syncthreads();
  tcgen05_fence_after();
  const uint32_t tmem_base = *tmem_slot;

  if (warp == 0) {
    if (lane == 0) {  // TMA producer
      int it = 0;     // k-blocks issued so far over all this CTA's tiles: picks the stage and the phase
      for (int tile = first_tile; tile < tiles; tile += tile_step) {
        int tm, tn;
        tile_coords<GROUP_M>(tile, tiles_m, tiles_n, tm, tn);
        for (int kb = 0; kb < k_blocks; ++kb, ++it) {
          const int s = it % STAGES, round = it / STAGES;
          if (round > 0) mbar_wait(&empty[s], (round - 1) & 1);  // the MMAs of round-1 have read stage s
          mbar_arrive_expect_tx(&full[s], STAGE_BYTES);
          tma_load_2d(a_tile(s), &map_a, &full[s], kb * BK, tm * BM);
          tma_load_2d(b_tile(s), &map_b, &full[s], kb * BK, tn * BN);
        }
      }
    }
  } else if (warp == 1) {
    if (lane == 0) {  // MMA issuer: one thread drives the tensor core for the whole CTA
      int it = 0, local = 0;
      for (int tile = first_tile; tile < tiles; tile += tile_step, ++local) {
        const int buf = local % ACC_BUFS, use = local / ACC_BUFS;
        if (use > 0) mbar_wait(&acc_empty[buf], (use - 1) & 1);  // the epilogue has read this accumulator out
        tcgen05_fence_after();
        const uint32_t d_tmem = tmem_base + uint32_t(buf * BN);  // column offset; lane 0
        for (int kb = 0; kb < k_blocks; ++kb, ++it) {
          const int s = it % STAGES;
          mbar_wait(&full[s], (it / STAGES) & 1);
          tcgen05_fence_after();
          // BK = 64 = 4 x 16: the kk-th 16-element slice of a 128-byte swizzled row starts 32 bytes further on
#pragma unroll
          for (int kk = 0; kk < BK / MMA_K; ++kk)
            mma_bf16(d_tmem, smem_desc_sw128(a_tile(s) + kk * MMA_K), smem_desc_sw128(b_tile(s) + kk * MMA_K),
                     (kb | kk) != 0);  // the tile's first MMA overwrites D
          mma_commit(&empty[s]);  // stage s goes back to the producer once these MMAs have read it
        }
        mma_commit(&acc_full[buf]);  // all of this tile's MMAs done: the epilogue may read accumulator buf
      }
    }
  } else {  // epilogue, warps 2-5
    const int quarter = warp % 4;  // the TMEM lanes this warp may read: 32 * quarter .. + 31 (rows of the tile)
    int local = 0;
    for (int tile = first_tile; tile < tiles; tile += tile_step, ++local) {
      int tm, tn;
      tile_coords<GROUP_M>(tile, tiles_m, tiles_n, tm, tn);
      const int buf = local % ACC_BUFS, use = local / ACC_BUFS;
      mbar_wait(&acc_full[buf], use & 1);
      __syncwarp();  // converged again: tcgen05.ld is .sync.aligned
      tcgen05_fence_after();
      const int row = tm * BM + quarter * 32 + lane;
      const uint32_t taddr = tmem_base + (uint32_t(quarter * 32) << 16) + uint32_t(buf * BN);
#pragma unroll 1
      for (int chunk = 0; chunk < BN / 32; ++chunk) {
        const int col0 = tn * BN + chunk * 32;
        if (col0 >= n) break;  // the same for the whole warp
        uint32_t r[32];
        tmem_load_32cols(taddr + uint32_t(chunk * 32), r);
        store_row_chunk(r, c, m, n, row, col0);
      }
      tcgen05_fence_before();
      mbar_arrive(&acc_empty[buf]);  // this thread's reads of accumulator buf are complete
    }
  }

  // Teardown: every TMEM read is done before the owning warp frees the columns.
  __syncwarp();
  tcgen05_fence_before();
  __syncthreads();
  if (warp == 1) {
    __syncwarp();  // tcgen05.dealloc is .sync.aligned: the whole warp, converged
    tcgen05_fence_after();
    tmem_dealloc(tmem_base, TMEM_COLUMNS);
  }
#endif
}

// ---- host side (the tensor maps: gemm_common.cuh) -----------------------------------------------------


template <int STAGES, bool PERSISTENT>
cudaError_t launch(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k, cudaStream_t stream) {
  if (m <= 0 || n <= 0 || k <= 0) return cudaErrorInvalidValue;
  if (k % 8 != 0 || reinterpret_cast<uintptr_t>(a) % 16 || reinterpret_cast<uintptr_t>(b) % 16)
    return cudaErrorInvalidValue;
  int device = 0, major = 0, minor = 0, sms = 1;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  if (major != 10 || minor != 0) return cudaErrorInvalidDeviceFunction;  // sm_100a code only: never an empty kernel
  CUtensorMap map_a, map_b;
  if (!make_tma_map_2d(&map_a, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, a, m, k, BK, BM) ||
      !make_tma_map_2d(&map_b, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, b, n, k, BK, BN)) return cudaErrorNotSupported;
  // stages, 2 * STAGES + 4 barriers, the TMEM address slot, and slack for the 1024-byte alignment
  const size_t smem = size_t(STAGES) * STAGE_BYTES + (2 * STAGES + 4) * sizeof(uint64_t) + 16 + 1024;
  auto kernel = gemm_tcgen05<STAGES, PERSISTENT>;
  err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (err != cudaSuccess) return err;
  const int tiles = int(((m + BM - 1) / BM) * ((n + BN - 1) / BN));
  int grid = tiles;
  if (PERSISTENT) {
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    grid = tiles < sms ? tiles : sms;
  }
  kernel<<<grid, THREADS, smem, stream>>>(map_a, map_b, reinterpret_cast<__nv_bfloat16*>(c), m, n, k);
  return cudaGetLastError();
}

constexpr int DEEP = 4;  // 4 x 48 KiB of the 227 KiB a CTA may have
static_assert(DEEP * STAGE_BYTES + (2 * DEEP + 4) * 8 + 16 + 1024 <= 227 * 1024, "shared memory budget");

}  // namespace

extern "C" cudaError_t launch_gemm_tcgen05_1stage(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n,
                                                  int k, cudaStream_t stream) {
  return launch<1, false>(a, b, c, m, n, k, stream);
}

extern "C" cudaError_t launch_gemm_tcgen05_pipelined(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n,
                                                     int k, cudaStream_t stream) {
  return launch<DEEP, false>(a, b, c, m, n, k, stream);
}

extern "C" cudaError_t launch_gemm_tcgen05_persistent(const uint16_t* a, const uint16_t* b, uint16_t* c, int m,
                                                      int n, int k, cudaStream_t stream) {
  return launch<DEEP, true>(a, b, c, m, n, k, stream);
}
