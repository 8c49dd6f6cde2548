// aisp: arch sm_90a
// A Hopper bf16 GEMM, C[M, N] = A[M, K] @ B[N, K]^T (both operands K-major, as in nn.Linear), fp32
// accumulation, bf16 result, built up in steps so that a failure points at one mechanism:
//   0. TMA + wgmma, one shared-memory stage: load, wait, multiply, repeat (nothing overlaps)
//   1. the same with a STAGES-deep ring: TMA keeps STAGES-1 k-blocks in flight while wgmma works
//   2. warp-specialized: a producer warpgroup only issues TMA, two consumer warpgroups only multiply;
//      they hand stages over through "full" and "empty" mbarriers instead of __syncthreads
//   3. the same, persistent: grid = #SMs, each CTA loops over output tiles, so the producer already
//      fetches the next tile's k-blocks while the consumers write the last tile out
//   4. the same, with one wgmma group kept in flight across k-blocks (wait_group 1 instead of 0)
// Block tile 128 x 256 x 64: each consumer warpgroup owns 64 rows and issues m64n256k16 wgmmas.
// Shared memory tiles are written by TMA with the 128-byte swizzle, the layout wgmma reads through a
// descriptor with swizzle mode 1 (one 64-element bf16 row = 128 bytes; 8 rows = one 1024-byte atom).
#include <cuda.h>  // CUtensorMap and the cuTensorMapEncodeTiled prototype (types only: no -lcuda)
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "gemm_common.cuh"
#include "launchers.h"
#include "wgmma.cuh"

namespace {

constexpr int BM = 128, BN = 256, BK = 64;
constexpr int STAGE_A_BYTES = BM * BK * 2, STAGE_B_BYTES = BN * BK * 2;
constexpr int STAGE_BYTES = STAGE_A_BYTES + STAGE_B_BYTES;  // 48 KiB

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define AISP_HOPPER 1
#endif

// The device code exists only in the sm_90a build; for other targets the kernels compile to empty bodies
// (the Python variants require compute capability 9.0, so those are never launched).
#ifdef AISP_HOPPER
constexpr int GROUP_M = 8;  // tile order: 8 tile-rows share each B column band while it is in L2

// One consumer warpgroup's 64 x 256 fp32 accumulators to bf16 C. Fragment layout of wgmma m64nNk16 (the
// mma.m16n8 C layout repeated): warp w of the group holds rows 16w..16w+15; lane l holds, for each 8-column
// block j, columns 8j + 2(l%4) + {0,1} of row l/4 (d[4j], d[4j+1]) and of row l/4 + 8 (d[4j+2], d[4j+3]).
__device__ __forceinline__ void store_tile(const float (&d)[BN / 2], __nv_bfloat16* c, int m, int n, int row0,
                                           int col0, int thread_in_group) {
  const int warp = thread_in_group / 32, lane = thread_in_group % 32;
  const int row = row0 + warp * 16 + lane / 4;
  const bool pairs = (n % 2) == 0;  // then every (row, even col) pair is 4-byte aligned
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const int col = col0 + 8 * j + 2 * (lane % 4);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = row + 8 * half;
      if (r >= m || col >= n) continue;
      const float v0 = d[4 * j + 2 * half], v1 = d[4 * j + 2 * half + 1];
      __nv_bfloat16* out = c + int64_t(r) * n + col;
      if (pairs && col + 1 < n) {
        *reinterpret_cast<__nv_bfloat162*>(out) = __floats2bfloat162_rn(v0, v1);
      } else {
        out[0] = __float2bfloat16_rn(v0);
        if (col + 1 < n) out[1] = __float2bfloat16_rn(v1);
      }
    }
  }
}

// The k-block's four m64n256k16 wgmmas on one stage (BK = 64 = 4 x 16): within a 128-byte swizzled row,
// the k-th 16-element slice starts 32 bytes further on; the hardware applies the swizzle to the address.
// Issued and committed as one group; mma_stage also waits for it.
__device__ __forceinline__ void issue_stage(float (&d)[BN / 2], const __nv_bfloat16* a_tile,
                                            const __nv_bfloat16* b_tile) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < BK / 16; ++kk)
    wgmma_m64n256k16_bf16(d, smem_desc_sw128(a_tile + kk * 16), smem_desc_sw128(b_tile + kk * 16), 1);
  wgmma_commit();
}
__device__ __forceinline__ void mma_stage(float (&d)[BN / 2], const __nv_bfloat16* a_tile,
                                          const __nv_bfloat16* b_tile) {
  issue_stage(d, a_tile, b_tile);
  wgmma_wait<0>();
  fence_accumulators(d);
}

__device__ __forceinline__ uint8_t* aligned_smem() {
  extern __shared__ uint8_t smem_raw[];
  return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
}
#endif  // AISP_HOPPER

// Steps 0 and 1: 256 threads, both warpgroups multiply; thread 0 also issues the TMA copies. A stage is
// refilled only after __syncthreads shows both warpgroups have finished reading it.
template <int STAGES>
__global__ void __launch_bounds__(256, 1)
    gemm_tma_wgmma(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                   __nv_bfloat16* c, int m, int n, int k) {
#ifdef AISP_HOPPER
  uint8_t* smem = aligned_smem();
  auto* full = reinterpret_cast<uint64_t*>(smem + STAGES * STAGE_BYTES);
  auto a_tile = [&](int s) { return reinterpret_cast<__nv_bfloat16*>(smem + s * STAGE_BYTES); };
  auto b_tile = [&](int s) { return reinterpret_cast<__nv_bfloat16*>(smem + s * STAGE_BYTES + STAGE_A_BYTES); };
  const int tiles_m = (m + BM - 1) / BM, tiles_n = (n + BN - 1) / BN, k_blocks = (k + BK - 1) / BK;
  int tm, tn;
  tile_coords<GROUP_M>(blockIdx.x, tiles_m, tiles_n, tm, tn);
  const int group = threadIdx.x / 128;
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) mbar_init(&full[s], 1);
    fence_barrier_init();
  }
  __syncthreads();
  auto load = [&](int kb) {
    const int s = kb % STAGES;
    mbar_arrive_expect_tx(&full[s], STAGE_BYTES);
    tma_load_2d(a_tile(s), &map_a, &full[s], kb * BK, tm * BM);
    tma_load_2d(b_tile(s), &map_b, &full[s], kb * BK, tn * BN);
  };
  if (threadIdx.x == 0)
    for (int kb = 0; kb < STAGES && kb < k_blocks; ++kb) load(kb);
  float d[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) d[i] = 0.f;
  for (int kb = 0; kb < k_blocks; ++kb) {
    const int s = kb % STAGES;
    mbar_wait(&full[s], (kb / STAGES) & 1);
    mma_stage(d, a_tile(s) + group * 64 * BK, b_tile(s));
    __syncthreads();  // both warpgroups are done with stage s
    if (threadIdx.x == 0 && kb + STAGES < k_blocks) load(kb + STAGES);
    __syncwarp();  // warp 0 converged again before the next .aligned wgmma instructions
  }
  store_tile(d, c, m, n, tm * BM + group * 64, tn * BN, threadIdx.x % 128);
#endif
}

// Steps 2 to 4: 384 threads. Warpgroup 0 produces (one thread issues TMA), warpgroups 1-2 consume.
// full[s]: the producer's expect_tx arrival plus TMA's bytes complete it; empty[s]: one arrival from each
// consumer warp (8) once its wgmmas on stage s have finished. The producer gives registers to the consumers.
// MMA_OVERLAP (step 4): a consumer issues k-block kb's wgmmas before waiting for kb-1's, and releases kb-1's
// stage once only kb's group may still be running, so the tensor cores always have the next group queued.
template <int STAGES, bool PERSISTENT, bool MMA_OVERLAP = false>
__global__ void __launch_bounds__(384, 1)
    gemm_warp_specialized(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                          __nv_bfloat16* c, int m, int n, int k) {
#ifdef AISP_HOPPER
  uint8_t* smem = aligned_smem();
  auto* full = reinterpret_cast<uint64_t*>(smem + STAGES * STAGE_BYTES);
  uint64_t* empty = full + STAGES;
  auto a_tile = [&](int s) { return reinterpret_cast<__nv_bfloat16*>(smem + s * STAGE_BYTES); };
  auto b_tile = [&](int s) { return reinterpret_cast<__nv_bfloat16*>(smem + s * STAGE_BYTES + STAGE_A_BYTES); };
  const int tiles_m = (m + BM - 1) / BM, tiles_n = (n + BN - 1) / BN, k_blocks = (k + BK - 1) / BK;
  const int tiles = tiles_m * tiles_n;
  const int first_tile = blockIdx.x, tile_step = PERSISTENT ? gridDim.x : tiles;
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], 8);  // one arrival per consumer warp
    }
    fence_barrier_init();
  }
  __syncthreads();
  const int group = threadIdx.x / 128;
  if (group == 0) {  // producer
    setmaxnreg_dec<40>();
    if (threadIdx.x == 0) {
      int it = 0;  // k-blocks issued so far by this CTA, over all its tiles: it picks the stage and phase
      for (int tile = first_tile; tile < tiles; tile += tile_step) {
        int tm, tn;
        tile_coords<GROUP_M>(tile, tiles_m, tiles_n, tm, tn);
        for (int kb = 0; kb < k_blocks; ++kb, ++it) {
          const int s = it % STAGES, round = it / STAGES;
          if (round > 0) mbar_wait(&empty[s], (round - 1) & 1);  // consumers released round-1's use of s
          mbar_arrive_expect_tx(&full[s], STAGE_BYTES);
          tma_load_2d(a_tile(s), &map_a, &full[s], kb * BK, tm * BM);
          tma_load_2d(b_tile(s), &map_b, &full[s], kb * BK, tn * BN);
        }
      }
    }
  } else {  // consumers
    setmaxnreg_inc<232>();
    const int consumer = group - 1;
    int it = 0;
    for (int tile = first_tile; tile < tiles; tile += tile_step) {
      int tm, tn;
      tile_coords<GROUP_M>(tile, tiles_m, tiles_n, tm, tn);
      float d[BN / 2];
#pragma unroll
      for (int i = 0; i < BN / 2; ++i) d[i] = 0.f;
      int pending = -1;  // MMA_OVERLAP: the stage whose wgmma group may still be running
      for (int kb = 0; kb < k_blocks; ++kb, ++it) {
        const int s = it % STAGES;
        mbar_wait(&full[s], (it / STAGES) & 1);
        if (MMA_OVERLAP) {
          issue_stage(d, a_tile(s) + consumer * 64 * BK, b_tile(s));
          wgmma_wait<1>();  // the group before this one is complete: its stage can go back to the producer
          fence_accumulators(d);
          if (pending >= 0 && threadIdx.x % 32 == 0) mbar_arrive(&empty[pending]);
          pending = s;
        } else {
          mma_stage(d, a_tile(s) + consumer * 64 * BK, b_tile(s));
          if (threadIdx.x % 32 == 0) mbar_arrive(&empty[s]);  // this warp's wgmmas on stage s are complete
        }
        __syncwarp();
      }
      if (MMA_OVERLAP) {
        wgmma_wait<0>();
        fence_accumulators(d);
        if (pending >= 0 && threadIdx.x % 32 == 0) mbar_arrive(&empty[pending]);
        __syncwarp();
      }
      store_tile(d, c, m, n, tm * BM + consumer * 64, tn * BN, threadIdx.x % 128);
    }
  }
#endif
}

// ---- host side -----------------------------------------------------------------------------------


template <typename Kernel>
cudaError_t launch(Kernel kernel, int threads, int stages, bool persistent, const uint16_t* a, const uint16_t* b,
                   uint16_t* c, int m, int n, int k, cudaStream_t stream) {
  if (m <= 0 || n <= 0 || k <= 0) return cudaErrorInvalidValue;
  // TMA: global strides a multiple of 16 bytes, base addresses 16-byte aligned.
  if (k % 8 != 0 || reinterpret_cast<uintptr_t>(a) % 16 || reinterpret_cast<uintptr_t>(b) % 16)
    return cudaErrorInvalidValue;
  CUtensorMap map_a, map_b;
  if (!make_tma_map_2d(&map_a, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, a, m, k, BK, BM) ||
      !make_tma_map_2d(&map_b, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, b, n, k, BK, BN)) return cudaErrorNotSupported;
  const size_t smem = size_t(stages) * STAGE_BYTES + 2 * stages * sizeof(uint64_t) + 1024;  // + alignment slack
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (err != cudaSuccess) return err;
  const int tiles = int(((m + BM - 1) / BM) * ((n + BN - 1) / BN));
  int grid = tiles;
  if (persistent) {
    int device = 0, sms = 1;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    grid = tiles < sms ? tiles : sms;
  }
  kernel<<<grid, threads, smem, stream>>>(map_a, map_b, reinterpret_cast<__nv_bfloat16*>(c), m, n, k);
  return cudaGetLastError();
}

constexpr int DEEP = 4;  // 4 x 48 KiB of the 227 KiB a CTA may have

}  // namespace

extern "C" cudaError_t launch_gemm_tma_wgmma_1stage(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n,
                                                     int k, cudaStream_t stream) {
  return launch(gemm_tma_wgmma<1>, 256, 1, false, a, b, c, m, n, k, stream);
}

extern "C" cudaError_t launch_gemm_tma_wgmma_pipelined(const uint16_t* a, const uint16_t* b, uint16_t* c, int m,
                                                        int n, int k, cudaStream_t stream) {
  return launch(gemm_tma_wgmma<DEEP>, 256, DEEP, false, a, b, c, m, n, k, stream);
}

extern "C" cudaError_t launch_gemm_warp_specialized(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n,
                                                     int k, cudaStream_t stream) {
  return launch(gemm_warp_specialized<DEEP, false>, 384, DEEP, false, a, b, c, m, n, k, stream);
}

extern "C" cudaError_t launch_gemm_warp_specialized_persistent(const uint16_t* a, const uint16_t* b, uint16_t* c,
                                                                int m, int n, int k, cudaStream_t stream) {
  return launch(gemm_warp_specialized<DEEP, true>, 384, DEEP, true, a, b, c, m, n, k, stream);
}

extern "C" cudaError_t launch_gemm_ws_persistent_mma_overlap(const uint16_t* a, const uint16_t* b, uint16_t* c,
                                                              int m, int n, int k, cudaStream_t stream) {
  return launch(gemm_warp_specialized<DEEP, true, true>, 384, DEEP, true, a, b, c, m, n, k, stream);
}
