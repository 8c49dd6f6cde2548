// aisp: arch sm_90a
// The Hopper GEMM of hopper_gemm.cu in FP8: C[M, N] = (A[M, K] @ B[N, K]^T) * scale_a * scale_b, A and B
// float8 e4m3 (both K-major: FP8 wgmma reads only K-major operands from shared memory), tensorwise fp32
// scales read from device memory, fp32 accumulation, bf16 result. What changes from bf16:
//   - wgmma m64n256k32 (k32, not k16: a 32-byte K slice per row either way);
//   - 1-byte elements: a K-block of 128 elements is 128 bytes per row, so the 128-byte swizzle, the
//     1024-byte swizzle atom (8 rows) and the 32-byte step between K slices stay exactly as in bf16;
//   - block tile 128 x 256 x 128: a stage is still 16 + 32 KiB, but holds twice the FLOPs;
//   - TMA maps of UINT8 elements; K a multiple of 16 (the 16-byte row stride);
//   - the epilogue multiplies by scale_a * scale_b before rounding to bf16.
// Kernels: the 4-stage ring of step 1 (256 threads, __syncthreads per k-block: the baseline), and the
// warp-specialized persistent kernels of steps 3 and 4 (a TMA producer warpgroup, two wgmma consumer
// warpgroups, full/empty mbarriers, setmaxnreg; step 4 keeps one wgmma group in flight across k-blocks).
#include <cuda.h>  // CUtensorMap and the cuTensorMapEncodeTiled prototype (types only: no -lcuda)
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "gemm_common.cuh"
#include "launchers.h"
#include "wgmma_fp8.cuh"

namespace {

constexpr int BM = 128, BN = 256, BK = 128;  // BK in elements = bytes (e4m3)
constexpr int STAGE_A_BYTES = BM * BK, STAGE_B_BYTES = BN * BK;
constexpr int STAGE_BYTES = STAGE_A_BYTES + STAGE_B_BYTES;  // 48 KiB, as in bf16
constexpr int STAGES = 4;                                   // 4 x 48 KiB of the 227 KiB a CTA may have

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define AISP_HOPPER_FP8 1
#endif

// The device code exists only in the sm_90a build; for other targets the kernels compile to empty bodies
// (the Python variants require compute capability 9.0, so those are never launched).
#ifdef AISP_HOPPER_FP8
constexpr int GROUP_M = 8;  // tile order: 8 tile-rows share each B column band while it is in L2


// One consumer warpgroup's 64 x 256 fp32 accumulators, times alpha = scale_a * scale_b, to bf16 C. The fp32
// accumulator fragment of m64nNk32 is that of m64nNk16: warp w holds rows 16w..16w+15; lane l holds, for each
// 8-column block j, columns 8j + 2(l%4) + {0,1} of row l/4 (d[4j], d[4j+1]) and of row l/4 + 8 (d[4j+2..3]).
__device__ __forceinline__ void store_tile(const float (&d)[BN / 2], float alpha, __nv_bfloat16* c, int m, int n,
                                           int row0, int col0, int thread_in_group) {
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
      const float v0 = d[4 * j + 2 * half] * alpha, v1 = d[4 * j + 2 * half + 1] * alpha;
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

// The k-block's four m64n256k32 wgmmas on one stage (BK = 128 = 4 x 32): within a 128-byte swizzled row the
// k-th 32-element slice starts 32 bytes further on. Issued and committed as one group.
__device__ __forceinline__ void issue_stage(float (&d)[BN / 2], const uint8_t* a_tile, const uint8_t* b_tile) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < BK / 32; ++kk)
    wgmma_m64n256k32_e4m3(d, smem_desc_sw128(a_tile + kk * 32), smem_desc_sw128(b_tile + kk * 32), 1);
  wgmma_commit();
}
__device__ __forceinline__ void mma_stage(float (&d)[BN / 2], const uint8_t* a_tile, const uint8_t* b_tile) {
  issue_stage(d, a_tile, b_tile);
  wgmma_wait<0>();
  fence_accumulators(d);
}

__device__ __forceinline__ uint8_t* aligned_smem() {
  extern __shared__ uint8_t smem_raw[];
  return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
}
#endif  // AISP_HOPPER_FP8

// Baseline (step 1 in FP8): 256 threads, both warpgroups multiply; thread 0 also issues the TMA copies into a
// STAGES-deep ring. A stage is refilled only after __syncthreads shows both warpgroups have finished reading it.
__global__ void __launch_bounds__(256, 1)
    gemm_fp8_pipelined(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                       const float* scale_a, const float* scale_b, __nv_bfloat16* c, int m, int n, int k) {
#ifdef AISP_HOPPER_FP8
  uint8_t* smem = aligned_smem();
  auto* full = reinterpret_cast<uint64_t*>(smem + STAGES * STAGE_BYTES);
  auto a_tile = [&](int s) { return smem + s * STAGE_BYTES; };
  auto b_tile = [&](int s) { return smem + s * STAGE_BYTES + STAGE_A_BYTES; };
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
  store_tile(d, *scale_a * *scale_b, c, m, n, tm * BM + group * 64, tn * BN, threadIdx.x % 128);
#endif
}

// Steps 3 and 4 in FP8: 384 threads, grid = #SMs looping over tiles. Warpgroup 0 produces (one thread issues
// TMA), warpgroups 1-2 consume. full[s]: the producer's expect_tx arrival plus TMA's bytes complete it;
// empty[s]: one arrival from each consumer warp (8) once its wgmmas on stage s have finished.
// MMA_OVERLAP: a consumer issues k-block kb's wgmmas before waiting for kb-1's, then releases kb-1's stage.
template <bool MMA_OVERLAP>
__global__ void __launch_bounds__(384, 1)
    gemm_fp8_ws_persistent(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                           const float* scale_a, const float* scale_b, __nv_bfloat16* c, int m, int n, int k) {
#ifdef AISP_HOPPER_FP8
  uint8_t* smem = aligned_smem();
  auto* full = reinterpret_cast<uint64_t*>(smem + STAGES * STAGE_BYTES);
  uint64_t* empty = full + STAGES;
  auto a_tile = [&](int s) { return smem + s * STAGE_BYTES; };
  auto b_tile = [&](int s) { return smem + s * STAGE_BYTES + STAGE_A_BYTES; };
  const int tiles_m = (m + BM - 1) / BM, tiles_n = (n + BN - 1) / BN, k_blocks = (k + BK - 1) / BK;
  const int tiles = tiles_m * tiles_n;
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
      for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
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
    const float alpha = *scale_a * *scale_b;
    int it = 0;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
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
      store_tile(d, alpha, c, m, n, tm * BM + consumer * 64, tn * BN, threadIdx.x % 128);
    }
  }
#endif
}

// ---- host side -----------------------------------------------------------------------------------


template <typename Kernel>
cudaError_t launch(Kernel kernel, int threads, bool persistent, const uint8_t* a, const uint8_t* b,
                   const float* scale_a, const float* scale_b, uint16_t* c, int m, int n, int k, cudaStream_t stream) {
  if (m <= 0 || n <= 0 || k <= 0 || !scale_a || !scale_b) return cudaErrorInvalidValue;
  // TMA: global strides a multiple of 16 bytes (16 e4m3 elements), base addresses 16-byte aligned.
  if (k % 16 != 0 || reinterpret_cast<uintptr_t>(a) % 16 || reinterpret_cast<uintptr_t>(b) % 16)
    return cudaErrorInvalidValue;
  CUtensorMap map_a, map_b;
  if (!make_tma_map_2d(&map_a, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, a, m, k, BK, BM) ||
      !make_tma_map_2d(&map_b, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, b, n, k, BK, BN)) return cudaErrorNotSupported;
  const size_t smem = size_t(STAGES) * STAGE_BYTES + 2 * STAGES * sizeof(uint64_t) + 1024;  // + alignment slack
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
  kernel<<<grid, threads, smem, stream>>>(map_a, map_b, scale_a, scale_b, reinterpret_cast<__nv_bfloat16*>(c), m,
                                          n, k);
  return cudaGetLastError();
}

}  // namespace

extern "C" cudaError_t launch_gemm_fp8_pipelined(const uint8_t* a, const uint8_t* b, const float* scale_a,
                                                 const float* scale_b, uint16_t* c, int m, int n, int k,
                                                 cudaStream_t stream) {
  return launch(gemm_fp8_pipelined, 256, false, a, b, scale_a, scale_b, c, m, n, k, stream);
}

extern "C" cudaError_t launch_gemm_fp8_ws_persistent(const uint8_t* a, const uint8_t* b, const float* scale_a,
                                                     const float* scale_b, uint16_t* c, int m, int n, int k,
                                                     cudaStream_t stream) {
  return launch(gemm_fp8_ws_persistent<false>, 384, true, a, b, scale_a, scale_b, c, m, n, k, stream);
}

extern "C" cudaError_t launch_gemm_fp8_ws_persistent_mma_overlap(const uint8_t* a, const uint8_t* b,
                                                                 const float* scale_a, const float* scale_b,
                                                                 uint16_t* c, int m, int n, int k,
                                                                 cudaStream_t stream) {
  return launch(gemm_fp8_ws_persistent<true>, 384, true, a, b, scale_a, scale_b, c, m, n, k, stream);
}
