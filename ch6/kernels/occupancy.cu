// Choosing the block size: a fixed guess vs asking the occupancy API.
//
// The same SiLU, out = x / (1 + exp(-x)), launched two ways. The first uses a block size picked by
// hand, one thread per element. The second asks cudaOccupancyMaxPotentialBlockSize, which looks at
// this kernel's registers and shared memory and returns the block size that keeps the most warps
// resident per SM, plus the smallest grid that fills the GPU at that occupancy; a grid-stride loop
// then covers any n with that grid.
// __launch_bounds__(kMaxBlock) is the promise that the kernel never runs with more threads per
// block than that, so the compiler budgets registers for it (and the API never proposes more).
// Standalone: nvcc -O3 -DAISP_STANDALONE -o occupancy ch6/kernels/occupancy.cu && ./occupancy
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

constexpr int kFixedBlock = 256;
constexpr int kMaxBlock = 1024;

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
