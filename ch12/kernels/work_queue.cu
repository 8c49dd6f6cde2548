// Irregular work: a sum over every row of a ragged (CSR) matrix whose rows differ in length by 1000x.
// One warp handles one row at a time (lanes stride the row, then a fixed shuffle tree adds the 32
// partial sums), so a row's sum is the same bits whichever warp computes it.
//   static:        persistent warps (enough blocks to fill the GPU once), warp w takes the w-th
//                  contiguous slice of rows. Equal row counts are not equal work: the warps that got
//                  the long rows finish last while the rest of the GPU idles.
//   dynamic:       the same persistent warps take `grain` rows at a time from an atomic counter, so
//                  whoever is free takes the next rows: the load balances itself.
//   block_per_row: one 32-thread block per row; the hardware block scheduler balances the load, at the
//                  cost of launching (and retiring) a block for every row, however short.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

namespace {

constexpr int kBlock = 256;
constexpr unsigned kFull = 0xffffffffu;

// Four independent loads per lane per step: one warp alone keeps 512 bytes in flight, so a long row is
// not limited by one load's latency at a time. The four partial sums are added in a fixed order.
__device__ __forceinline__ float row_sum(const float* __restrict__ values, const int64_t* __restrict__ offsets,
                                         int64_t row, int lane) {
  const int64_t begin = offsets[row], end = offsets[row + 1];
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
  int64_t i = begin + lane;
  for (; i + 96 < end; i += 128) {
    const float v0 = values[i], v1 = values[i + 32], v2 = values[i + 64], v3 = values[i + 96];
    a0 += sqrtf(fmaf(v0, v0, 1.0f));
    a1 += sqrtf(fmaf(v1, v1, 1.0f));
    a2 += sqrtf(fmaf(v2, v2, 1.0f));
    a3 += sqrtf(fmaf(v3, v3, 1.0f));
  }
  for (; i < end; i += 32) {
    const float v = values[i];
    a0 += sqrtf(fmaf(v, v, 1.0f));
  }
  float acc = (a0 + a1) + (a2 + a3);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(kFull, acc, off);
  return acc;
}

__global__ void rows_static(const float* __restrict__ values, const int64_t* __restrict__ offsets,
                            float* __restrict__ out, int64_t rows) {
  const int lane = threadIdx.x % 32;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  const int64_t first = rows * warp / warps, last = rows * (warp + 1) / warps;
  for (int64_t r = first; r < last; ++r) {
    const float s = row_sum(values, offsets, r, lane);
    if (lane == 0) out[r] = s;
  }
}

__global__ void rows_dynamic(const float* __restrict__ values, const int64_t* __restrict__ offsets,
                             float* __restrict__ out, int64_t rows, unsigned long long* counter, int grain) {
  const int lane = threadIdx.x % 32;
  while (true) {
    unsigned long long first = 0;
    if (lane == 0) first = atomicAdd(counter, (unsigned long long)grain);
    first = __shfl_sync(kFull, first, 0);
    if (first >= (unsigned long long)rows) return;
    const int64_t last = min(int64_t(first) + grain, rows);
    for (int64_t r = int64_t(first); r < last; ++r) {
      const float s = row_sum(values, offsets, r, lane);
      if (lane == 0) out[r] = s;
    }
  }
}

__global__ void rows_block_per_row(const float* __restrict__ values, const int64_t* __restrict__ offsets,
                                   float* __restrict__ out) {
  const float s = row_sum(values, offsets, blockIdx.x, threadIdx.x);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

}  // namespace

extern "C" cudaError_t launch_rows_static(const float* values, const int64_t* offsets, float* out, int64_t rows,
                                          cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const int blocks = blocks_to_fill_gpu(rows_static, kBlock, rows * 32);
  rows_static<<<blocks, kBlock, 0, stream>>>(values, offsets, out, rows);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_rows_dynamic(const float* values, const int64_t* offsets, float* out, int64_t rows,
                                           unsigned long long* counter, int grain, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (grain < 1) return cudaErrorInvalidValue;
  const int blocks = blocks_to_fill_gpu(rows_dynamic, kBlock, ceil_div(rows, grain) * 32);
  rows_dynamic<<<blocks, kBlock, 0, stream>>>(values, offsets, out, rows, counter, grain);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_rows_block_per_row(const float* values, const int64_t* offsets, float* out,
                                                 int64_t rows, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (rows > 0x7fffffff) return cudaErrorInvalidValue;
  rows_block_per_row<<<unsigned(rows), 32, 0, stream>>>(values, offsets, out);
  return cudaGetLastError();
}
