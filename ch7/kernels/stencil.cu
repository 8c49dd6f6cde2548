// A 17-point 1D stencil, out[i] = sum_k taps[k] * x[i + k - 8] (zero outside [0, n)), staged through
// shared memory: each input is read from global memory once per tile and used by 17 outputs.
// Three ways of filling the shared tile, in the same persistent loop (each block walks over tiles
// blockIdx.x, blockIdx.x + gridDim.x, ...):
//   plain:      threads load the tile (global -> register -> shared), wait, compute. While a block
//               waits for its loads it computes nothing; only other resident blocks hide the latency.
//   cp_async:   (sm_80+) cp.async copies global -> shared without passing through registers, and
//               the copy of the *next* tile is issued before computing the current one (double
//               buffering), so each block overlaps its own loads with its own arithmetic.
//   bulk_copy:  (sm_90+) one thread issues one cp.async.bulk per tile, the Tensor Memory Accelerator
//               moves the whole span, and an mbarrier counts the bytes as they land; the other
//               threads spend no instructions on address arithmetic or copies at all.
// All need n % 4 == 0 and x 16-byte aligned (the launchers check), so a tile's span is whole 16-byte
// chunks that lie either fully inside [0, n) or fully outside it.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

constexpr int kRadius = 8;                // a multiple of 4, so spans start on 16-byte boundaries
constexpr int kTaps = 2 * kRadius + 1;
constexpr int kBlock = 256;
constexpr int kTile = 1024;               // outputs per tile, 4 per thread
constexpr int kSpan = kTile + 2 * kRadius;  // inputs per tile: 1040 floats, 4160 bytes

extern "C" int stencil_radius() { return kRadius; }

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Every thread loads the taps once into registers; the loop over tiles reuses them.
__device__ __forceinline__ void load_taps(const float* __restrict__ taps, float (&w)[kTaps]) {
#pragma unroll
  for (int k = 0; k < kTaps; ++k) w[k] = taps[k];
}

// Outputs [tile * kTile, tile * kTile + kTile) from a span that starts kRadius before the tile.
__device__ __forceinline__ void compute_tile(const float* span, float* __restrict__ out, int64_t tile, int64_t n,
                                             const float (&w)[kTaps]) {
  for (int j = threadIdx.x; j < kTile; j += kBlock) {
    const int64_t i = tile * kTile + j;
    if (i < n) {
      float acc = 0.f;
#pragma unroll
      for (int k = 0; k < kTaps; ++k) acc = fmaf(w[k], span[j + k], acc);
      out[i] = acc;
    }
  }
}

__global__ void __launch_bounds__(kBlock) stencil_plain(const float* __restrict__ x, float* __restrict__ out,
                                                        const float* __restrict__ taps, int64_t n, int64_t tiles) {
  __shared__ float span[kSpan];
  float w[kTaps];
  load_taps(taps, w);
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t g0 = tile * kTile - kRadius;
    for (int j = threadIdx.x; j < kSpan; j += kBlock) span[j] = (g0 + j >= 0 && g0 + j < n) ? x[g0 + j] : 0.f;
    __syncthreads();  // the whole span is in shared memory
    compute_tile(span, out, tile, n, w);
    __syncthreads();  // everyone is done with the span before it is overwritten
  }
}

// ---- cp.async (sm_80+): 16-byte asynchronous copies, grouped and waited for by group ----

__device__ __forceinline__ void cp_async_16(void* dst_smem, const void* src, bool in_range) {
  // src-size 0 copies nothing and zero-fills the 16 bytes: the padding outside [0, n) for free.
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst_smem)), "l"(src),
               "r"(in_range ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all_but_newest() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }

__device__ __forceinline__ void prefetch_span(float* span, const float* x, int64_t tile, int64_t tiles, int64_t n) {
  if (tile < tiles) {
    const int64_t g0 = tile * kTile - kRadius;
    for (int c = threadIdx.x; c < kSpan / 4; c += kBlock) {
      const int64_t g = g0 + 4 * c;
      const bool in_range = g >= 0 && g < n;
      cp_async_16(span + 4 * c, in_range ? x + g : x, in_range);
    }
  }
  cp_async_commit();  // possibly an empty group: keeps the "all but the newest" count uniform
}

__global__ void __launch_bounds__(kBlock) stencil_cp_async(const float* __restrict__ x, float* __restrict__ out,
                                                           const float* __restrict__ taps, int64_t n, int64_t tiles) {
  __shared__ alignas(16) float span[2][kSpan];
  float w[kTaps];
  load_taps(taps, w);
  prefetch_span(span[0], x, blockIdx.x, tiles, n);
  int buf = 0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, buf ^= 1) {
    prefetch_span(span[buf ^ 1], x, tile + gridDim.x, tiles, n);  // the next tile, while we compute this one
    cp_async_wait_all_but_newest();                                 // this thread's copies of this tile landed
    __syncthreads();                                                // ... and everyone else's
    compute_tile(span[buf], out, tile, n, w);
    __syncthreads();  // done with span[buf] before the next iteration prefetches into it
  }
  asm volatile("cp.async.wait_all;\n" ::: "memory");  // leave no copy in flight at exit
}

// ---- cp.async.bulk (sm_90+): one bulk copy per tile, completion counted in bytes by an mbarrier ----

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t arrivals) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(arrivals) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");  // visible to the async proxy
#endif
}

// Arrive (the one expected arrival) and tell the barrier how many bytes the copy will deliver.
__device__ __forceinline__ void mbarrier_arrive_expect_bytes(uint64_t* bar, uint32_t bytes) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
#endif
}

__device__ __forceinline__ void bulk_copy_to_shared(void* dst_smem, const void* src, uint32_t bytes, uint64_t* bar) {
#if __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_addr(dst_smem)),
               "l"(src), "r"(bytes), "r"(smem_addr(bar))
               : "memory");
#endif
}

// Wait until the barrier's phase with this parity has completed (all bytes landed).
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
#if __CUDA_ARCH__ >= 900
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  }
#endif
}

// Order this thread's earlier generic-proxy writes to shared memory before later async-proxy (bulk
// copy) writes to the same bytes.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// The part of a tile's span inside [0, n): [lo, hi) in global indices.
__device__ __forceinline__ void span_range(int64_t tile, int64_t n, int64_t* lo, int64_t* hi) {
  const int64_t g0 = tile * kTile - kRadius;
  *lo = g0 > 0 ? g0 : 0;
  *hi = g0 + kSpan < n ? g0 + kSpan : n;
}

__device__ __forceinline__ void issue_bulk(float* span, uint64_t* bar, const float* x, int64_t tile, int64_t n) {
  int64_t lo, hi;
  span_range(tile, n, &lo, &hi);
  const uint32_t bytes = uint32_t(hi - lo) * sizeof(float);  // a multiple of 16 since n % 4 == 0
  mbarrier_arrive_expect_bytes(bar, bytes);
  bulk_copy_to_shared(span + (lo - (tile * kTile - kRadius)), x + lo, bytes, bar);
}

__global__ void __launch_bounds__(kBlock) stencil_bulk_copy(const float* __restrict__ x, float* __restrict__ out,
                                                            const float* __restrict__ taps, int64_t n, int64_t tiles) {
  __shared__ alignas(128) float span[2][kSpan];
  __shared__ alignas(8) uint64_t bar[2];
  float w[kTaps];
  load_taps(taps, w);
  if (threadIdx.x == 0) {
    mbarrier_init(&bar[0], 1);
    mbarrier_init(&bar[1], 1);
  }
  __syncthreads();
  if (threadIdx.x == 0 && blockIdx.x < tiles) issue_bulk(span[0], &bar[0], x, blockIdx.x, n);
  uint32_t round = 0;  // iterations so far: buffer round % 2, its barrier phase round / 2
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, ++round) {
    const int buf = round & 1;
    const int64_t next = tile + gridDim.x;
    if (threadIdx.x == 0 && next < tiles) issue_bulk(span[buf ^ 1], &bar[buf ^ 1], x, next, n);
    // Edge tiles: zero the part of the span outside [0, n), which the bulk copy does not write.
    int64_t lo, hi;
    span_range(tile, n, &lo, &hi);
    const int64_t g0 = tile * kTile - kRadius;
    if (lo > g0 || hi < g0 + kSpan) {
      for (int j = threadIdx.x; j < kSpan; j += kBlock)
        if (g0 + j < lo || g0 + j >= hi) span[buf][j] = 0.f;
      fence_proxy_async_shared();  // before a later bulk copy reuses these bytes
    }
    mbarrier_wait(&bar[buf], (round >> 1) & 1);
    __syncthreads();  // the zero padding written by other threads is visible too
    compute_tile(span[buf], out, tile, n, w);
    __syncthreads();  // done with span[buf] before the next iteration's copy into it
  }
}

// ---- launchers ----

static cudaError_t check_args(const float* x, int64_t n) {
  if (n % 4 != 0) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(x) % 16) return cudaErrorMisalignedAddress;
  return cudaSuccess;
}

template <typename Kernel>
static cudaError_t launch_persistent(Kernel kernel, const float* x, float* out, const float* taps, int64_t n,
                                     cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const cudaError_t err = check_args(x, n);
  if (err != cudaSuccess) return err;
  const int64_t tiles = ceil_div(n, kTile);
  const int blocks = blocks_to_fill_gpu(kernel, kBlock, tiles * kBlock);  // at most one block per tile
  kernel<<<blocks, kBlock, 0, stream>>>(x, out, taps, n, tiles);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_stencil_plain(const float* x, float* out, const float* taps, int64_t n,
                                            cudaStream_t stream) {
  return launch_persistent(stencil_plain, x, out, taps, n, stream);
}

extern "C" cudaError_t launch_stencil_cp_async(const float* x, float* out, const float* taps, int64_t n,
                                               cudaStream_t stream) {
  return launch_persistent(stencil_cp_async, x, out, taps, n, stream);
}

extern "C" cudaError_t launch_stencil_bulk_copy(const float* x, float* out, const float* taps, int64_t n,
                                                cudaStream_t stream) {
  int device = 0, major = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (major < 9) return cudaErrorNotSupported;  // cp.async.bulk and mbarrier tx counts need sm_90
  return launch_persistent(stencil_bulk_copy, x, out, taps, n, stream);
}
