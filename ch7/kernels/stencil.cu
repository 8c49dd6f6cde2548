// A 17-point 1D stencil, out[i] = sum_k taps[k] * x[i + k - 8] (zero outside [0, n)), staged through
// shared memory: each input is read from global memory once per tile and used by 17 outputs.
// Three ways of filling the shared tile, in the same persistent loop (each block walks over tiles
// blockIdx.x, blockIdx.x + gridDim.x, ...):
//   plain:      threads load the tile with 16-byte loads (global -> register -> shared), wait,
//               compute. While a block waits for its loads it computes nothing; only other resident
//               blocks hide the latency.
//   cp_async:   (sm_80+) cp.async copies global -> shared without passing through registers, and the
//               copies of the next kStages - 1 tiles are in flight while the current one is computed
//               (a multi-stage pipeline), so each block overlaps its own loads with its own arithmetic.
//   bulk_copy:  (sm_90+) one thread issues one cp.async.bulk per tile, the Tensor Memory Accelerator
//               moves the whole span, and an mbarrier counts the bytes as they land; the other
//               threads spend no instructions on address arithmetic or copies at all. Same pipeline.
// The arithmetic is the same in all three: each thread computes four neighbouring outputs from 20
// inputs held in registers (five 16-byte shared-memory loads), so a tile costs 5 shared loads per 4
// outputs rather than 17 per output. Shared-memory bandwidth, not only DRAM, bounds a stencil: 17
// scalar shared loads per output would need more of it than the DRAM side does.
// All need n % 4 == 0 and x, out 16-byte aligned (the launchers check), so a tile's span is whole
// 16-byte chunks that lie either fully inside [0, n) or fully outside it, and four outputs are all in
// range or all out.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "aisp/grid.cuh"
#include "launchers.h"

constexpr int kRadius = 8;                  // a multiple of 4, so spans start on 16-byte boundaries
constexpr int kTaps = 2 * kRadius + 1;
constexpr int kBlock = 256;
constexpr int kOutPerThread = 4;
constexpr int kTile = kBlock * kOutPerThread;  // outputs per tile: 1024
constexpr int kSpan = kTile + 2 * kRadius;     // inputs per tile: 1040 floats, 4160 bytes
constexpr int kDefaultStages = 3;              // tiles in shared memory at once (scripts/tune_memory_kernels.py)

extern "C" int stencil_radius() { return kRadius; }

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Every thread loads the taps once into registers; the loop over tiles reuses them.
__device__ __forceinline__ void load_taps(const float* __restrict__ taps, float (&w)[kTaps]) {
#pragma unroll
  for (int k = 0; k < kTaps; ++k) w[k] = taps[k];
}

// Outputs [tile * kTile, tile * kTile + kTile) from a span that starts kRadius before the tile; this
// thread's four are [4t, 4t + 4) of the tile, from span[4t .. 4t + 20).
__device__ __forceinline__ void compute_tile(const float* span, float* __restrict__ out, int64_t tile, int64_t n,
                                             const float (&w)[kTaps]) {
  const int j = kOutPerThread * threadIdx.x;
  const int64_t i = tile * kTile + j;
  if (i >= n) return;
  float v[kOutPerThread + 2 * kRadius];
#pragma unroll
  for (int q = 0; q < (kOutPerThread + 2 * kRadius) / 4; ++q) {
    const float4 s = reinterpret_cast<const float4*>(span + j)[q];  // lanes read neighbouring 16 B: no conflicts
    v[4 * q] = s.x;
    v[4 * q + 1] = s.y;
    v[4 * q + 2] = s.z;
    v[4 * q + 3] = s.w;
  }
  float acc[kOutPerThread] = {};
#pragma unroll
  for (int k = 0; k < kTaps; ++k)
#pragma unroll
    for (int o = 0; o < kOutPerThread; ++o) acc[o] = fmaf(w[k], v[o + k], acc[o]);
  *reinterpret_cast<float4*>(out + i) = make_float4(acc[0], acc[1], acc[2], acc[3]);
}

__global__ void __launch_bounds__(kBlock) stencil_plain(const float* __restrict__ x, float* __restrict__ out,
                                                        const float* __restrict__ taps, int64_t n, int64_t tiles) {
  __shared__ alignas(16) float span[kSpan];
  float w[kTaps];
  load_taps(taps, w);
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t g0 = tile * kTile - kRadius;
    for (int c = threadIdx.x; c < kSpan / 4; c += kBlock) {
      const int64_t g = g0 + 4 * c;
      const float4 v = (g >= 0 && g < n) ? *reinterpret_cast<const float4*>(x + g) : make_float4(0.f, 0.f, 0.f, 0.f);
      reinterpret_cast<float4*>(span)[c] = v;
    }
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
template <int kPending>  // wait until at most kPending of this thread's newest groups are still in flight
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

__device__ __forceinline__ void prefetch_span(float* span, const float* x, int64_t tile, int64_t tiles, int64_t n) {
  if (tile < tiles) {
    const int64_t g0 = tile * kTile - kRadius;
    for (int c = threadIdx.x; c < kSpan / 4; c += kBlock) {
      const int64_t g = g0 + 4 * c;
      const bool in_range = g >= 0 && g < n;
      cp_async_16(span + 4 * c, in_range ? x + g : x, in_range);
    }
  }
  cp_async_commit();  // possibly an empty group: keeps the count of groups per iteration uniform
}

// Iteration i computes tile i (counting this block's tiles) from buffer i % kStages, and first issues
// the copy of tile i + kStages - 1 into the buffer tile i - 1 used: kStages - 1 tiles in flight.
template <int kStages>
__global__ void __launch_bounds__(kBlock) stencil_cp_async(const float* __restrict__ x, float* __restrict__ out,
                                                           const float* __restrict__ taps, int64_t n, int64_t tiles) {
  __shared__ alignas(16) float span[kStages][kSpan];
  float w[kTaps];
  load_taps(taps, w);
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) prefetch_span(span[s], x, blockIdx.x + int64_t(s) * gridDim.x, tiles, n);
  int iter = 0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, ++iter) {
    cp_async_wait<kStages - 2>();  // this thread's copies of this tile landed (newer ones may still fly)
    __syncthreads();               // ... and everyone else's; everyone is also done with tile i - 1
    prefetch_span(span[(iter + kStages - 1) % kStages], x, tile + int64_t(kStages - 1) * gridDim.x, tiles, n);
    compute_tile(span[iter % kStages], out, tile, n, w);
  }
  asm volatile("cp.async.wait_all;\n" ::: "memory");  // leave no copy in flight at exit
}

// ---- cp.async.bulk (sm_90+): one bulk copy per tile, completion counted in bytes by an mbarrier ----

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t arrivals) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(arrivals) : "memory");
#endif
}

__device__ __forceinline__ void fence_mbarrier_init() {
#if __CUDA_ARCH__ >= 900
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

// The pipeline of stencil_cp_async, with one bulk copy per tile issued by thread 0 and one mbarrier
// per buffer. Buffer b serves iterations b, b + kStages, ...: its k-th use waits for phase k, parity k % 2.
template <int kStages>
__global__ void __launch_bounds__(kBlock) stencil_bulk_copy(const float* __restrict__ x, float* __restrict__ out,
                                                            const float* __restrict__ taps, int64_t n, int64_t tiles) {
  __shared__ alignas(128) float span[kStages][kSpan];
  __shared__ alignas(8) uint64_t bar[kStages];
  float w[kTaps];
  load_taps(taps, w);
  if (threadIdx.x == 0) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) mbarrier_init(&bar[s], 1);
    fence_mbarrier_init();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      const int64_t t = blockIdx.x + int64_t(s) * gridDim.x;
      if (t < tiles) issue_bulk(span[s], &bar[s], x, t, n);
    }
  }
  uint32_t iter = 0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, ++iter) {
    const int buf = iter % kStages;
    // Edge tiles: zero the part of the span outside [0, n), which the bulk copy does not write.
    int64_t lo, hi;
    span_range(tile, n, &lo, &hi);
    const int64_t g0 = tile * kTile - kRadius;
    if (lo > g0 || hi < g0 + kSpan) {
      for (int j = threadIdx.x; j < kSpan; j += kBlock)
        if (g0 + j < lo || g0 + j >= hi) span[buf][j] = 0.f;
      fence_proxy_async_shared();  // before a later bulk copy reuses these bytes
    }
    mbarrier_wait(&bar[buf], (iter / kStages) & 1);
    __syncthreads();  // the zero padding written by other threads is visible; everyone is done with tile i - 1
    if (threadIdx.x == 0) {
      const int64_t next = tile + int64_t(kStages - 1) * gridDim.x;
      const int nbuf = (iter + kStages - 1) % kStages;  // the buffer tile i - 1 used
      if (next < tiles) issue_bulk(span[nbuf], &bar[nbuf], x, next, n);
    }
    compute_tile(span[buf], out, tile, n, w);
  }
}

// ---- launchers ----

static cudaError_t check_args(const float* x, const float* out, int64_t n) {
  if (n % 4 != 0) return cudaErrorInvalidValue;
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16) return cudaErrorMisalignedAddress;
  return cudaSuccess;
}

// A persistent grid: at most the blocks that fit at once, with the tiles split evenly between them
// (every block runs the same number of iterations, so no last, partial round leaves SMs idle).
template <typename Kernel>
static cudaError_t launch_persistent(Kernel kernel, const float* x, float* out, const float* taps, int64_t n,
                                     cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const cudaError_t err = check_args(x, out, n);
  if (err != cudaSuccess) return err;
  const int64_t tiles = ceil_div(n, kTile);
  const unsigned blocks = balanced_grid(tiles, resident_blocks(kernel, kBlock), 1);
  kernel<<<blocks, kBlock, 0, stream>>>(x, out, taps, n, tiles);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_stencil_plain(const float* x, float* out, const float* taps, int64_t n,
                                            cudaStream_t stream) {
  return launch_persistent(stencil_plain, x, out, taps, n, stream);
}

extern "C" cudaError_t launch_stencil_cp_async(const float* x, float* out, const float* taps, int64_t n, int stages,
                                               cudaStream_t stream) {
  switch (stages == 0 ? kDefaultStages : stages) {
    case 2: return launch_persistent(stencil_cp_async<2>, x, out, taps, n, stream);
    case 3: return launch_persistent(stencil_cp_async<3>, x, out, taps, n, stream);
    case 4: return launch_persistent(stencil_cp_async<4>, x, out, taps, n, stream);
    default: return cudaErrorInvalidValue;
  }
}

extern "C" cudaError_t launch_stencil_bulk_copy(const float* x, float* out, const float* taps, int64_t n, int stages,
                                                cudaStream_t stream) {
  int device = 0, major = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (major < 9) return cudaErrorNotSupported;  // cp.async.bulk and mbarrier tx counts need sm_90
  switch (stages == 0 ? kDefaultStages : stages) {
    case 2: return launch_persistent(stencil_bulk_copy<2>, x, out, taps, n, stream);
    case 3: return launch_persistent(stencil_bulk_copy<3>, x, out, taps, n, stream);
    case 4: return launch_persistent(stencil_bulk_copy<4>, x, out, taps, n, stream);
    default: return cudaErrorInvalidValue;
  }
}
