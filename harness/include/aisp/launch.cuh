// Launch helpers every chapter's kernels share (CUDA headers only). harness/cuda_build.py puts
// harness/include on the include path; a standalone build adds `-I harness/include`.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks that fill every SM once at the kernel's best occupancy: the usual grid for a grid-stride
// loop. Never more than the work needs, never fewer than one.
template <typename Kernel>
inline int blocks_to_fill_gpu(Kernel kernel, int block, int64_t work_items, size_t smem = 0) {
  int device = 0, sms = 1, per_sm = 1;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block, smem);
  int64_t fill = int64_t(sms) * (per_sm > 0 ? per_sm : 1);
  int64_t need = ceil_div(work_items, block);
  return int(need < fill ? (need > 0 ? need : 1) : fill);
}
