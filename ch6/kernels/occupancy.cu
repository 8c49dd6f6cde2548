// Choosing the block size: a fixed guess vs asking the occupancy API.
//
// The same SiLU, out = x / (1 + exp(-x)), launched two ways. The first uses a block size picked by
// hand, one thread per element. The second asks cudaOccupancyMaxPotentialBlockSize, which looks at
// this kernel's registers and shared memory and returns the block size that keeps the most warps
// resident per SM, plus the smallest grid that fills the GPU at that occupancy; a grid-stride loop
// then covers any n with that grid.
// __launch_bounds__(kMaxBlock) is the promise that the kernel never runs with more threads per
// block than that, so the compiler budgets registers for it (and the API never proposes more).
//
// The block size alone does not bring a light memory-bound kernel to the copy bandwidth: with one
// 4-byte load per thread in flight, even a full SM (2048 threads) keeps only 8 KB in flight, while
// HBM3e needs several times that per SM (Little's law: bytes in flight = bandwidth x latency). The
// float4 kernel asks the API the same question for a body that loads kVecs 16-byte vectors per thread
// before computing on any of them: 16 * kVecs bytes in flight per thread.
// Standalone: nvcc -O3 -DAISP_STANDALONE -o occupancy ch6/kernels/occupancy.cu && ./occupancy
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "aisp/grid.cuh"
#include "launchers.h"

constexpr int kFixedBlock = 256;
constexpr int kMaxBlock = 1024;
// Defaults of the float4 kernel (scripts/tune_memory_kernels.py times the alternatives).
// On the H200 (tune run of 2026-11-29): 4 vectors and a block per chunk reach 94% of the copy bandwidth; the
// API's one-wave grid with a grid-stride loop, 83% (the last pass of the loop leaves SMs idle).
constexpr int kDefaultVecs = 4;   // 16-byte loads in flight per thread
constexpr int kDefaultWaves = 0;  // 0: one block per chunk (no grid-stride loop); n: n waves of resident blocks

__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }

__global__ void __launch_bounds__(kFixedBlock) silu_fixed_block(const float* __restrict__ x, float* __restrict__ out,
                                                                int64_t n) {
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = silu(x[i]);
}

__global__ void __launch_bounds__(kMaxBlock) silu_grid_stride(const float* __restrict__ x, float* __restrict__ out,
                                                              int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = silu(x[i]);
}

__device__ __forceinline__ float4 silu4(float4 v) { return make_float4(silu(v.x), silu(v.y), silu(v.z), silu(v.w)); }

// Grid-stride over chunks of kVecs * blockDim.x float4 vectors: each thread loads its kVecs vectors
// (blockDim.x apart, so every load is coalesced across the warp) before it computes or stores any.
// Needs x and out 16-byte aligned (the launcher checks); the n % 4 tail is done with scalars.
template <int kVecs>
__global__ void __launch_bounds__(kMaxBlock) silu_float4(const float* __restrict__ x, float* __restrict__ out,
                                                         int64_t n) {
  const int64_t n4 = n / 4;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* out4 = reinterpret_cast<float4*>(out);
  const int64_t chunk = int64_t(kVecs) * blockDim.x;
  for (int64_t base = blockIdx.x * chunk + threadIdx.x; base < n4; base += gridDim.x * chunk) {
    float4 v[kVecs];
#pragma unroll
    for (int k = 0; k < kVecs; ++k)
      if (base + k * blockDim.x < n4) v[k] = x4[base + k * blockDim.x];
#pragma unroll
    for (int k = 0; k < kVecs; ++k)
      if (base + k * blockDim.x < n4) out4[base + k * blockDim.x] = silu4(v[k]);
  }
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t < n - 4 * n4) out[4 * n4 + t] = silu(x[4 * n4 + t]);
}

extern "C" cudaError_t launch_silu_fixed_block(const float* x, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (ceil_div(n, kFixedBlock) > INT32_MAX) return cudaErrorInvalidValue;
  silu_fixed_block<<<unsigned(ceil_div(n, kFixedBlock)), kFixedBlock, 0, stream>>>(x, out, n);
  return cudaGetLastError();
}

// What the occupancy API proposes for silu_grid_stride: (smallest grid that fills the GPU, block size).
extern "C" cudaError_t silu_occupancy_choice(int* min_grid, int* block) {
  return cudaOccupancyMaxPotentialBlockSize(min_grid, block, silu_grid_stride, 0, kMaxBlock);
}

extern "C" cudaError_t launch_silu_occupancy_api(const float* x, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  // The API loops over block sizes on the host: ask once per device, not on every launch.
  static int cached_device = -1, min_grid = 0, block = 0;
  int device = 0;
  cudaGetDevice(&device);
  if (device != cached_device) {
    cudaError_t err = silu_occupancy_choice(&min_grid, &block);
    if (err != cudaSuccess) return err;
    cached_device = device;
  }
  const int64_t needed = ceil_div(n, block);
  silu_grid_stride<<<unsigned(needed < min_grid ? needed : min_grid), block, 0, stream>>>(x, out, n);
  return cudaGetLastError();
}

template <int kVecs>
static cudaError_t launch_silu_float4_t(const float* x, float* out, int64_t n, int block, int waves,
                                        cudaStream_t stream) {
  const auto kernel = silu_float4<kVecs>;
  if (block == 0) {  // ask the occupancy API, once per device
    static int cached_device = -1, api_block = 0;
    int device = 0, min_grid = 0;
    cudaGetDevice(&device);
    if (device != cached_device) {
      const cudaError_t err = cudaOccupancyMaxPotentialBlockSize(&min_grid, &api_block, kernel, 0, kMaxBlock);
      if (err != cudaSuccess) return err;
      cached_device = device;
    }
    block = api_block;
  }
  if (block < 32 || block > kMaxBlock || block % 32 || waves < 0) return cudaErrorInvalidValue;
  const int64_t chunks = ceil_div(n / 4, int64_t(kVecs) * block);
  const unsigned grid = balanced_grid(chunks > 0 ? chunks : 1, resident_blocks(kernel, block), waves);
  kernel<<<grid, block, 0, stream>>>(x, out, n);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_silu_float4(const float* x, float* out, int64_t n, int block, int vecs, int waves,
                                          cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16) return cudaErrorMisalignedAddress;
  if (block < 0) block = 0;
  if (vecs == 0) vecs = kDefaultVecs;
  if (waves < 0) waves = kDefaultWaves;
  switch (vecs) {
    case 1: return launch_silu_float4_t<1>(x, out, n, block, waves, stream);
    case 2: return launch_silu_float4_t<2>(x, out, n, block, waves, stream);
    case 4: return launch_silu_float4_t<4>(x, out, n, block, waves, stream);
    case 8: return launch_silu_float4_t<8>(x, out, n, block, waves, stream);
    default: return cudaErrorInvalidValue;
  }
}

// What the occupancy API proposes for the float4 kernel at its default kVecs.
extern "C" cudaError_t silu_float4_occupancy_choice(int* min_grid, int* block) {
  return cudaOccupancyMaxPotentialBlockSize(min_grid, block, silu_float4<kDefaultVecs>, 0, kMaxBlock);
}

// Resident blocks per SM for a kernel at a block size, as the occupancy calculator sees it.
extern "C" cudaError_t silu_blocks_per_sm(int grid_stride_kernel, int block, int* blocks) {
  return grid_stride_kernel ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, silu_grid_stride, block, 0)
                            : cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, silu_fixed_block, block, 0);
}

#ifdef AISP_STANDALONE
#include <cstdio>

int main() {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) { std::printf("no CUDA device\n"); return 1; }
  int min_grid = 0, block = 0;
  cudaError_t err = silu_occupancy_choice(&min_grid, &block);
  std::printf("%s: %d SMs, %d threads/SM max\n", prop.name, prop.multiProcessorCount, prop.maxThreadsPerMultiProcessor);
  std::printf("occupancy API for silu_grid_stride: block %d, min grid %d (%s)\n", block, min_grid,
              cudaGetErrorString(err));
  cudaFuncAttributes attr;
  cudaFuncGetAttributes(&attr, silu_grid_stride);
  std::printf("registers/thread %d; resident warps per SM by block size:\n", attr.numRegs);
  for (int b = 64; b <= kMaxBlock; b *= 2) {
    int blocks = 0;
    silu_blocks_per_sm(1, b, &blocks);
    std::printf("  block %4d: %2d blocks, %2d warps (%3.0f%% occupancy)\n", b, blocks, blocks * b / 32,
                100.0 * blocks * b / prop.maxThreadsPerMultiProcessor);
  }
  return err == cudaSuccess ? 0 : 1;
}
#endif
