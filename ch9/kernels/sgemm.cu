// fp32 GEMM by tiling level: C[M, N] = A[M, K] @ B[K, N], row-major, fp32 FMAs (no TF32).
// Each level raises the arithmetic intensity of what the SMs fetch:
//   naive    one output per thread; every FMA reads two values from global memory (through L1/L2)
//   smem     32x32 tiles staged in shared memory: each global value fetched once per tile, used 32 times
//   regtile  128x128x8 block tile, 256 threads, 8x8 outputs per thread held in registers: each value read
//            from shared memory is used 8 times (64 FMAs per 16 shared loads, vs 1 FMA per 2 loads above)
//   vec4     the same with float4 global loads and a double-buffered shared tile (the next tile's loads are
//            in flight while the current one is computed on; one __syncthreads per tile)
// Every kernel checks bounds: any M, N, K work (out-of-range tile elements are loaded as zeros).
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

namespace {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// One thread per output; a warp's 32 threads share a row (A is broadcast) and read 32 adjacent B columns.
__global__ void sgemm_naive(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c, int m,
                            int n, int k) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  const int row = blockIdx.y * blockDim.y + threadIdx.y;
  if (row >= m || col >= n) return;
  float acc = 0.f;
  for (int i = 0; i < k; ++i) acc = fmaf(a[int64_t(row) * k + i], b[int64_t(i) * n + col], acc);
  c[int64_t(row) * n + col] = acc;
}

constexpr int kTile = 32;

// 32x32 threads, one output each; A and B tiles in shared memory. as[ty][i] is one address per warp
// (a broadcast) and bs[i][tx] 32 consecutive words: no bank conflicts.
__global__ void __launch_bounds__(kTile * kTile) sgemm_smem(const float* __restrict__ a, const float* __restrict__ b,
                                                           float* __restrict__ c, int m, int n, int k) {
  __shared__ float as[kTile][kTile];
  __shared__ float bs[kTile][kTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * kTile + ty, col = blockIdx.x * kTile + tx;
  float acc = 0.f;
  for (int k0 = 0; k0 < k; k0 += kTile) {
    as[ty][tx] = (row < m && k0 + tx < k) ? a[int64_t(row) * k + k0 + tx] : 0.f;
    bs[ty][tx] = (k0 + ty < k && col < n) ? b[int64_t(k0 + ty) * n + col] : 0.f;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kTile; ++i) acc = fmaf(as[ty][i], bs[i][tx], acc);
    __syncthreads();
  }
  if (row < m && col < n) c[int64_t(row) * n + col] = acc;
}

// The register-tiled design: block tile BM x BN, K in steps of BK; thread (ty, tx) of a 16x16 grid owns
// rows {ty*4 .. ty*4+3, 64+ty*4 .. 64+ty*4+3} and the same pattern of columns, so that its shared-memory
// reads are float4s. A is stored transposed (as[k][m]) so a thread's 4 rows are one float4; the +4 pad
// spreads the transposing stores over banks and keeps rows 16-byte aligned.
constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8, kThreads = 256, kPad = 4;
static_assert((BM / TM) * (BN / TN) == kThreads, "one 8x8 micro-tile per thread");

__device__ __forceinline__ int tile_row(int ty, int i) { return i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4); }

// 8 k-steps of the 8x8 outer product from one shared tile.
__device__ __forceinline__ void micro_tile(const float (*as)[BM + kPad], const float (*bs)[BN], int ty, int tx,
                                           float (&acc)[TM][TN]) {
#pragma unroll
  for (int kk = 0; kk < BK; ++kk) {
    const float4 a0 = *reinterpret_cast<const float4*>(&as[kk][ty * 4]);
    const float4 a1 = *reinterpret_cast<const float4*>(&as[kk][64 + ty * 4]);
    const float4 b0 = *reinterpret_cast<const float4*>(&bs[kk][tx * 4]);
    const float4 b1 = *reinterpret_cast<const float4*>(&bs[kk][64 + tx * 4]);
    const float ra[TM] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const float rb[TN] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(ra[i], rb[j], acc[i][j]);
  }
}

template <typename TOut>
__device__ __forceinline__ void store_tile(TOut* __restrict__ c, const float (&acc)[TM][TN], int row0, int col0,
                                           int ty, int tx, int m, int n) {
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int r = row0 + tile_row(ty, i);
    if (r >= m) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int col = col0 + tile_row(tx, j);
      if (col < n) c[int64_t(r) * n + col] = from_float<TOut>(acc[i][j]);
    }
  }
}

// Scalar global loads (any sizes, any alignment); TIn float or bf16, converted to fp32 on the way to shared memory.
template <typename TIn, typename TOut>
__global__ void __launch_bounds__(kThreads) gemm_regtile(const TIn* __restrict__ a, const TIn* __restrict__ b,
                                                         TOut* __restrict__ c, int m, int n, int k) {
  __shared__ __align__(16) float as[BK][BM + kPad];
  __shared__ __align__(16) float bs[BK][BN];
  const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  const int a_row = tid / 2, a_col = (tid % 2) * 4;    // A tile 128x8: 4 consecutive elements per thread
  const int b_row = tid / 32, b_col = (tid % 32) * 4;  // B tile 8x128: 4 consecutive elements per thread
  float acc[TM][TN] = {};
  for (int k0 = 0; k0 < k; k0 += BK) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int ar = row0 + a_row, ak = k0 + a_col + i;
      as[a_col + i][a_row] = (ar < m && ak < k) ? to_float(a[int64_t(ar) * k + ak]) : 0.f;
      const int bk = k0 + b_row, bc = col0 + b_col + i;
      bs[b_row][b_col + i] = (bk < k && bc < n) ? to_float(b[int64_t(bk) * n + bc]) : 0.f;
    }
    __syncthreads();
    micro_tile(as, bs, ty, tx, acc);
    __syncthreads();
  }
  store_tile(c, acc, row0, col0, ty, tx, m, n);
}

// float4 global loads into registers for tile t+1 while tile t is computed on; then stored into the other
// shared buffer. Needs k % 4 == 0, n % 4 == 0 and 16-byte aligned pointers (the launcher checks).
__global__ void __launch_bounds__(kThreads) sgemm_regtile_vec4(const float* __restrict__ a,
                                                               const float* __restrict__ b, float* __restrict__ c,
                                                               int m, int n, int k) {
  __shared__ __align__(16) float as[2][BK][BM + kPad];
  __shared__ __align__(16) float bs[2][BK][BN];
  const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  const int a_row = tid / 2, a_col = (tid % 2) * 4;
  const int b_row = tid / 32, b_col = (tid % 32) * 4;
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
  auto load_a = [&](int k0) {  // k % 4 == 0: a float4 starting inside [0, k) lies wholly inside
    const int ar = row0 + a_row, ak = k0 + a_col;
    return (ar < m && ak < k) ? *reinterpret_cast<const float4*>(&a[int64_t(ar) * k + ak]) : zero;
  };
  auto load_b = [&](int k0) {
    const int bk = k0 + b_row, bc = col0 + b_col;
    return (bk < k && bc < n) ? *reinterpret_cast<const float4*>(&b[int64_t(bk) * n + bc]) : zero;
  };
  auto stash = [&](int buf, float4 va, float4 vb) {
    as[buf][a_col + 0][a_row] = va.x;
    as[buf][a_col + 1][a_row] = va.y;
    as[buf][a_col + 2][a_row] = va.z;
    as[buf][a_col + 3][a_row] = va.w;
    *reinterpret_cast<float4*>(&bs[buf][b_row][b_col]) = vb;
  };
  float acc[TM][TN] = {};
  stash(0, load_a(0), load_b(0));
  __syncthreads();
  int buf = 0;
  for (int k0 = 0; k0 < k; k0 += BK) {
    const bool more = k0 + BK < k;
    float4 va = zero, vb = zero;
    if (more) {  // issued before the math: their latency hides behind 512 FMAs per thread
      va = load_a(k0 + BK);
      vb = load_b(k0 + BK);
    }
    micro_tile(as[buf], bs[buf], ty, tx, acc);
    if (more) stash(buf ^ 1, va, vb);  // the other buffer: last read before the previous __syncthreads
    __syncthreads();
    buf ^= 1;
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int r = row0 + tile_row(ty, i);
    if (r >= m) continue;
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // n % 4 == 0: a float4 starting inside [0, n) lies wholly inside
      const int col = col0 + half * 64 + tx * 4;
      if (col < n)
        *reinterpret_cast<float4*>(&c[int64_t(r) * n + col]) =
            make_float4(acc[i][half * 4], acc[i][half * 4 + 1], acc[i][half * 4 + 2], acc[i][half * 4 + 3]);
    }
  }
}

dim3 tile_grid(int m, int n) { return dim3(unsigned(ceil_div(n, BN)), unsigned(ceil_div(m, BM))); }

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

extern "C" cudaError_t launch_sgemm_naive(const float* a, const float* b, float* c, int m, int n, int k,
                                          cudaStream_t stream) {
  if (m <= 0 || n <= 0) return cudaSuccess;
  const dim3 block(32, 8);
  sgemm_naive<<<dim3(unsigned(ceil_div(n, 32)), unsigned(ceil_div(m, 8))), block, 0, stream>>>(a, b, c, m, n, k);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_sgemm_smem(const float* a, const float* b, float* c, int m, int n, int k,
                                         cudaStream_t stream) {
  if (m <= 0 || n <= 0) return cudaSuccess;
  const dim3 grid(unsigned(ceil_div(n, kTile)), unsigned(ceil_div(m, kTile)));
  sgemm_smem<<<grid, dim3(kTile, kTile), 0, stream>>>(a, b, c, m, n, k);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_sgemm_regtile(const float* a, const float* b, float* c, int m, int n, int k,
                                            cudaStream_t stream) {
  if (m <= 0 || n <= 0) return cudaSuccess;
  gemm_regtile<float, float><<<tile_grid(m, n), kThreads, 0, stream>>>(a, b, c, m, n, k);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_sgemm_regtile_vec4(const float* a, const float* b, float* c, int m, int n, int k,
                                                 cudaStream_t stream) {
  if (m <= 0 || n <= 0) return cudaSuccess;
  if (k % 4 || n % 4 || !aligned16(a) || !aligned16(b) || !aligned16(c))
    return launch_sgemm_regtile(a, b, c, m, n, k, stream);
  sgemm_regtile_vec4<<<tile_grid(m, n), kThreads, 0, stream>>>(a, b, c, m, n, k);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_gemm_bf16_simt(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                             cudaStream_t stream) {
  if (m <= 0 || n <= 0) return cudaSuccess;
  gemm_regtile<__nv_bfloat16, __nv_bfloat16><<<tile_grid(m, n), kThreads, 0, stream>>>(
      reinterpret_cast<const __nv_bfloat16*>(a), reinterpret_cast<const __nv_bfloat16*>(b),
      reinterpret_cast<__nv_bfloat16*>(c), m, n, k);
  return cudaGetLastError();
}
