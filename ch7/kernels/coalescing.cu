// Coalesced vs strided access: the same out = x * alpha over a row-major [rows, cols] matrix, with two
// ways of mapping threads to elements.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

// Thread t takes element t: the 32 threads of a warp read 32 neighbouring floats, 128 contiguous
// bytes, which the memory system serves as four full 32-byte sectors.
__global__ void scale_coalesced(const float* __restrict__ x, float* __restrict__ out, float alpha, int64_t n) {
  int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t < n) out[t] = x[t] * alpha;
}

// Thread t takes row t % rows, column t / rows: column-major order over row-major data, a swapped
// index. Neighbouring threads are a whole row (cols * 4 bytes) apart, so one warp-wide load touches
// 32 different sectors and uses 4 of each sector's 32 bytes.
__global__ void scale_strided(const float* __restrict__ x, float* __restrict__ out, float alpha, int64_t rows,
                              int64_t cols) {
  int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t < rows * cols) {
    int64_t i = (t % rows) * cols + t / rows;
    out[i] = x[i] * alpha;
  }
}

extern "C" cudaError_t launch_scale_coalesced(const float* x, float* out, float alpha, int64_t rows, int64_t cols,
                                              cudaStream_t stream) {
  constexpr int kBlock = 256;
  const int64_t n = rows * cols;
  if (n == 0) return cudaSuccess;
  scale_coalesced<<<unsigned(ceil_div(n, kBlock)), kBlock, 0, stream>>>(x, out, alpha, n);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_scale_strided(const float* x, float* out, float alpha, int64_t rows, int64_t cols,
                                            cudaStream_t stream) {
  constexpr int kBlock = 256;
  const int64_t n = rows * cols;
  if (n == 0) return cudaSuccess;
  scale_strided<<<unsigned(ceil_div(n, kBlock)), kBlock, 0, stream>>>(x, out, alpha, rows, cols);
  return cudaGetLastError();
}
