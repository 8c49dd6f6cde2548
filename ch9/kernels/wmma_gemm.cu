// Tensor cores from CUDA C++: a bf16 GEMM through nvcuda::wmma (16x16x16 fragments, fp32 accumulators).
// C[M, N] = A[M, K] @ B[K, N], row-major, bf16 in and out. Block tile 128x128, K in steps of 32; 8 warps
// in a 2x4 grid, each owning a 64x32 piece of C (4x2 accumulator fragments). Tiles are staged in shared
// memory (double-buffered, loaded through registers one tile ahead, as in sgemm.cu's vec4 kernel); each
// row is padded by 8 bf16 so that the fragment loads of consecutive rows fall in different banks.
// The math is the same as the SIMT kernel's; only the instruction doing it changes (HMMA on the tensor
// cores instead of FFMA), which is the lesson. What it lacks vs cuBLAS: cp.async/TMA loads, wgmma
// (Hopper's warpgroup MMA: Chapter 10) and larger tiles per warp.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "aisp/launch.cuh"
#include "launchers.h"

namespace {

constexpr int BM = 128, BN = 128, BK = 32, kWarps = 8, kThreads = kWarps * 32, kPad = 8;
constexpr int kFragM = 4, kFragN = 2;   // per warp: 4x2 fragments of 16x16 = 64x32 outputs
constexpr int kLdA = BK + kPad, kLdB = BN + kPad;  // multiples of 8 (wmma's rule for 16-bit types)

struct Tile {
  uint4 a[2], b[2];  // this thread's share of the next A and B tiles: 2 x 8 bf16 each
};

// Loads one BK-step: A tile 128x32 and B tile 32x128 (512 vectors of 8 bf16 each, 2 per thread).
// kVec: 16-byte loads (k % 8 == 0, n % 8 == 0, 16-byte aligned); else element by element. Zeros outside.
template <bool kVec>
__device__ __forceinline__ Tile load_tile(const __nv_bfloat16* __restrict__ a, const __nv_bfloat16* __restrict__ b,
                                          int m, int n, int k, int row0, int col0, int k0) {
  Tile t;
#pragma unroll
  for (int p = 0; p < 2; ++p) {
    const int idx = threadIdx.x + p * kThreads;
    const int ar = row0 + idx / 4, ak = k0 + (idx % 4) * 8;
    const int bk = k0 + idx / 16, bc = col0 + (idx % 16) * 8;
    if (kVec) {
      t.a[p] = (ar < m && ak < k) ? *reinterpret_cast<const uint4*>(&a[int64_t(ar) * k + ak]) : make_uint4(0, 0, 0, 0);
      t.b[p] = (bk < k && bc < n) ? *reinterpret_cast<const uint4*>(&b[int64_t(bk) * n + bc]) : make_uint4(0, 0, 0, 0);
    } else {
      __nv_bfloat16* va = reinterpret_cast<__nv_bfloat16*>(&t.a[p]);
      __nv_bfloat16* vb = reinterpret_cast<__nv_bfloat16*>(&t.b[p]);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        va[e] = (ar < m && ak + e < k) ? a[int64_t(ar) * k + ak + e] : __float2bfloat16_rn(0.f);
        vb[e] = (bk < k && bc + e < n) ? b[int64_t(bk) * n + bc + e] : __float2bfloat16_rn(0.f);
      }
    }
  }
  return t;
}

__device__ __forceinline__ void stash(const Tile& t, __nv_bfloat16 (*as)[kLdA], __nv_bfloat16 (*bs)[kLdB]) {
#pragma unroll
  for (int p = 0; p < 2; ++p) {
    const int idx = threadIdx.x + p * kThreads;
    *reinterpret_cast<uint4*>(&as[idx / 4][(idx % 4) * 8]) = t.a[p];
    *reinterpret_cast<uint4*>(&bs[idx / 16][(idx % 16) * 8]) = t.b[p];
  }
}

template <bool kVec>
__global__ void __launch_bounds__(kThreads) gemm_bf16_wmma(const __nv_bfloat16* __restrict__ a,
                                                           const __nv_bfloat16* __restrict__ b,
                                                           __nv_bfloat16* __restrict__ c, int m, int n, int k) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800  // bf16 WMMA: sm_80 and newer
  using namespace nvcuda;
  __shared__ __align__(32) __nv_bfloat16 as[2][BM][kLdA];
  __shared__ __align__(32) __nv_bfloat16 bs[2][BK][kLdB];
  __shared__ __align__(32) float staging[kWarps][16 * 16];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;  // 2 x 4 warps; each 64 rows x 32 columns
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kFragM][kFragN];
#pragma unroll
  for (int i = 0; i < kFragM; ++i)
#pragma unroll
    for (int j = 0; j < kFragN; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  stash(load_tile<kVec>(a, b, m, n, k, row0, col0, 0), as[0], bs[0]);
  __syncthreads();
  int buf = 0;
  for (int k0 = 0; k0 < k; k0 += BK) {
    const bool more = k0 + BK < k;
    Tile next;
    if (more) next = load_tile<kVec>(a, b, m, n, k, row0, col0, k0 + BK);  // in flight during the MMAs
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[kFragM];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb[kFragN];
#pragma unroll
      for (int i = 0; i < kFragM; ++i) wmma::load_matrix_sync(fa[i], &as[buf][warp_m * 64 + i * 16][kk], kLdA);
#pragma unroll
      for (int j = 0; j < kFragN; ++j) wmma::load_matrix_sync(fb[j], &bs[buf][kk][warp_n * 32 + j * 16], kLdB);
#pragma unroll
      for (int i = 0; i < kFragM; ++i)
#pragma unroll
        for (int j = 0; j < kFragN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    if (more) stash(next, as[buf ^ 1], bs[buf ^ 1]);
    __syncthreads();
    buf ^= 1;
  }

  // Epilogue: each fragment through this warp's 16x16 staging area, then rounded to bf16 and stored with
  // bounds checks (a fragment's element layout in registers is unspecified, so it cannot be stored directly).
  float* stage = staging[warp];
#pragma unroll
  for (int i = 0; i < kFragM; ++i)
#pragma unroll
    for (int j = 0; j < kFragN; ++j) {
      wmma::store_matrix_sync(stage, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      const int r = row0 + warp_m * 64 + i * 16 + lane / 2;
      const int cbase = col0 + warp_n * 32 + j * 16 + (lane % 2) * 8;
      if (r < m) {
#pragma unroll
        for (int e = 0; e < 8; ++e)
          if (cbase + e < n) c[int64_t(r) * n + cbase + e] = __float2bfloat16_rn(stage[(lane / 2) * 16 + (lane % 2) * 8 + e]);
      }
      __syncwarp();
    }
#else
  __trap();  // the launcher refuses GPUs older than sm_80
#endif
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

extern "C" cudaError_t launch_gemm_bf16_wmma(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                             cudaStream_t stream) {
  if (m <= 0 || n <= 0) return cudaSuccess;
  int device = 0, major = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (major < 8) return cudaErrorNotSupported;
  const auto* pa = reinterpret_cast<const __nv_bfloat16*>(a);
  const auto* pb = reinterpret_cast<const __nv_bfloat16*>(b);
  auto* pc = reinterpret_cast<__nv_bfloat16*>(c);
  const dim3 grid(unsigned(ceil_div(n, BN)), unsigned(ceil_div(m, BM)));
  if (k % 8 == 0 && n % 8 == 0 && aligned16(a) && aligned16(b))
    gemm_bf16_wmma<true><<<grid, kThreads, 0, stream>>>(pa, pb, pc, m, n, k);
  else
    gemm_bf16_wmma<false><<<grid, kThreads, 0, stream>>>(pa, pb, pc, m, n, k);
  return cudaGetLastError();
}
