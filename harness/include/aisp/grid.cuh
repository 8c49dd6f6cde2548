// Grid sizing for grid-stride kernels: how many blocks fill the GPU once, and an even grid (CUDA headers only).
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"

// Blocks of `block` threads of `kernel` resident on the whole GPU at once. The occupancy calculator
// runs on the host, so the answer is kept for the last (kernel, device, block size) asked about.
template <typename Kernel>
inline int64_t resident_blocks(Kernel kernel, int block) {
  static const void* cached_kernel = nullptr;
  static int cached_device = -1, cached_block = -1;
  static int64_t cached = 1;
  int device = 0;
  cudaGetDevice(&device);
  const void* key = reinterpret_cast<const void*>(kernel);
  if (key != cached_kernel || device != cached_device || block != cached_block) {
    int sms = 1, per_sm = 1;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block, 0);
    cached = int64_t(sms) * (per_sm > 0 ? per_sm : 1);
    cached_kernel = key;
    cached_device = device;
    cached_block = block;
  }
  return cached;
}

// The grid for `chunks` pieces of work, one piece per block per grid-stride iteration.
// waves == 0: one block per piece (every block does one iteration).
// waves > 0: at most `waves` times the blocks that fit at once, with the pieces split evenly, so that
//   every block runs the same number of iterations and no last, partial round leaves SMs idle.
inline unsigned balanced_grid(int64_t chunks, int64_t resident, int waves) {
  if (chunks <= 0) return 1;
  int64_t grid = chunks;
  if (waves > 0) {
    const int64_t iterations = ceil_div(chunks, resident * waves);
    grid = ceil_div(chunks, iterations);
  }
  return unsigned(grid < INT32_MAX ? grid : INT32_MAX);
}
