// Instruction-level parallelism: row sums with one accumulator vs several independent ones.
//
// One block per row. With one accumulator, each thread's loop is load -> add -> next load. The stride
// is blockDim.x, known only at run time, and nvcc does not unroll such a loop, so each thread has one
// load in flight and waits the full memory latency for each. (With a compile-time stride nvcc unrolls
// it 4x by itself and hoists the loads: loop_unrolling.py is about that.) With K independent
// accumulators and the loop unrolled by K, each thread issues K loads back to back before the first
// add needs its value: K loads in flight per thread, at the same occupancy. The partial sums are
// combined at the end (a different summation order, so results differ in the last bits).
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

constexpr int kBlock = 256;

// Sum of one value per thread over the block; the result is valid in thread 0.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_sums[kBlock / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  v = threadIdx.x < kBlock / 32 ? warp_sums[threadIdx.x] : 0.f;
  if (threadIdx.x < 32) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

// The straightforward loop: one accumulator.
__global__ void __launch_bounds__(kBlock) row_sum_one_accumulator(const float* __restrict__ x, float* __restrict__ out,
                                                                  int64_t cols) {
  const float* row = x + int64_t(blockIdx.x) * cols;
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) acc += row[i];
  const float total = block_sum(acc);
  if (threadIdx.x == 0) out[blockIdx.x] = total;
}

// kAcc independent accumulators; the main loop takes kAcc elements per thread per iteration, each
// blockDim.x apart so that every load is still coalesced across the warp.
template <int kAcc>
__global__ void __launch_bounds__(kBlock) row_sum_ilp(const float* __restrict__ x, float* __restrict__ out,
                                                      int64_t cols) {
  const float* row = x + int64_t(blockIdx.x) * cols;
  float acc[kAcc];
#pragma unroll
  for (int k = 0; k < kAcc; ++k) acc[k] = 0.f;
  const int64_t step = blockDim.x;
  int64_t i = threadIdx.x;
  for (; i + (kAcc - 1) * step < cols; i += kAcc * step) {
#pragma unroll
    for (int k = 0; k < kAcc; ++k) acc[k] += row[i + k * step];
  }
  for (; i < cols; i += step) acc[0] += row[i];  // the ragged end of the row
#pragma unroll
  for (int stride = kAcc / 2; stride > 0; stride /= 2)  // pairwise: (a0 + a1) + (a2 + a3) ...
#pragma unroll
    for (int k = 0; k < stride; ++k) acc[k] += acc[k + stride];
  const float total = block_sum(acc[0]);
  if (threadIdx.x == 0) out[blockIdx.x] = total;
}

extern "C" cudaError_t launch_row_sum(int accumulators, const float* x, float* out, int64_t rows, int64_t cols,
                                      cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (rows > INT32_MAX) return cudaErrorInvalidValue;
  const unsigned grid = unsigned(rows);
  switch (accumulators) {
    case 1: row_sum_one_accumulator<<<grid, kBlock, 0, stream>>>(x, out, cols); break;
    case 4: row_sum_ilp<4><<<grid, kBlock, 0, stream>>>(x, out, cols); break;
    case 8: row_sum_ilp<8><<<grid, kBlock, 0, stream>>>(x, out, cols); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}
