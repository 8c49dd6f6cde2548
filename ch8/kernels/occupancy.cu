// Occupancy limited by registers, and raised by capping them with __launch_bounds__.
//
// An embedding-style lookup, out[i] = table[idx[i]] * scale, with random indices into a table far
// larger than L2: each element is a dependent pair of loads (the index, then the value) with the full
// DRAM latency, so throughput is set by how many loads are in flight, i.e. by how many warps are
// resident. The kernel also has a second mode (a softmax-pooled lookup over a 128-wide window) that
// needs its 128 values in registers at once. Registers are allocated per kernel for the worst path,
// so even when mode 0 runs, every thread holds ~200 registers and only one 256-thread block fits per
// SM: 8 of 64 warps. __launch_bounds__(256, B) asks the compiler to fit B blocks per SM (at most
// 65536 / (256 * B) registers per thread); the pooled path then spills to local memory (cached in
// L1), and the lookup that actually runs gets 4x or 8x the warps.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

constexpr int kBlock = 256;
constexpr int kWindow = 128;

__device__ __forceinline__ float lookup(const float* __restrict__ table, int64_t table_size, int64_t j, float scale,
                                        int mode) {
  if (mode == 0) return table[j] * scale;
  // Pooled: softmax(v) . v over table[j .. j + 128), clamped at the end of the table.
  float v[kWindow];
#pragma unroll
  for (int k = 0; k < kWindow; ++k) v[k] = table[j + k < table_size ? j + k : table_size - 1];
  float m = v[0];
#pragma unroll
  for (int k = 1; k < kWindow; ++k) m = fmaxf(m, v[k]);
  float num = 0.f, den = 0.f;
#pragma unroll
  for (int k = 0; k < kWindow; ++k) {
    const float e = expf(v[k] - m);
    num = fmaf(e, v[k], num);
    den += e;
  }
  return scale * num / den;
}

// No launch bounds: the compiler may use as many registers as the pooled path wants.
__global__ void gather_default(const float* __restrict__ table, int64_t table_size, const int32_t* __restrict__ idx,
                               float* __restrict__ out, int64_t n, float scale, int mode) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = lookup(table, table_size, idx[i], scale, mode);
}

// The same body, with at least kMinBlocks blocks of 256 threads required to fit on one SM.
template <int kMinBlocks>
__global__ void __launch_bounds__(kBlock, kMinBlocks)
    gather_bounded(const float* __restrict__ table, int64_t table_size, const int32_t* __restrict__ idx,
                   float* __restrict__ out, int64_t n, float scale, int mode) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = lookup(table, table_size, idx[i], scale, mode);
}

using GatherKernel = void (*)(const float*, int64_t, const int32_t*, float*, int64_t, float, int);

static GatherKernel pick(int min_blocks_per_sm) {
  switch (min_blocks_per_sm) {
    case 0: return gather_default;
    case 4: return gather_bounded<4>;
    case 8: return gather_bounded<8>;
    default: return nullptr;
  }
}

extern "C" cudaError_t launch_gather(int min_blocks_per_sm, const float* table, int64_t table_size,
                                     const int32_t* idx, float* out, int64_t n, float scale, int mode,
                                     cudaStream_t stream) {
  const GatherKernel kernel = pick(min_blocks_per_sm);
  if (kernel == nullptr || (mode != 0 && mode != 1)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  kernel<<<unsigned(ceil_div(n, kBlock)), kBlock, 0, stream>>>(table, table_size, idx, out, n, scale, mode);
  return cudaGetLastError();
}

extern "C" cudaError_t gather_kernel_info(int min_blocks_per_sm, int* registers, int* local_bytes,
                                          int* blocks_per_sm) {
  const GatherKernel kernel = pick(min_blocks_per_sm);
  if (kernel == nullptr) return cudaErrorInvalidValue;
  cudaFuncAttributes attr;
  cudaError_t err = cudaFuncGetAttributes(&attr, kernel);
  if (err != cudaSuccess) return err;
  *registers = attr.numRegs;
  *local_bytes = int(attr.localSizeBytes);
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, kernel, kBlock, 0);
}
