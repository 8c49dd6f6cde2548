// SAXPY, out = a * x + y, in one pass: a grid-stride loop with scalar loads, and one with 16-byte
// (float4) loads and stores, which moves four floats per instruction and so needs a quarter of the
// load/store instructions for the same bytes.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

__global__ void saxpy_scalar(int64_t n, float a, const float* __restrict__ x, const float* __restrict__ y,
                             float* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = fmaf(a, x[i], y[i]);
}

// Needs x, y and out 16-byte aligned (the launcher checks). The n % 4 tail is done with scalars.
__global__ void saxpy_float4(int64_t n, float a, const float* __restrict__ x, const float* __restrict__ y,
                             float* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n4 = n / 4;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  const float4* y4 = reinterpret_cast<const float4*>(y);
  float4* out4 = reinterpret_cast<float4*>(out);
  for (int64_t i = first; i < n4; i += stride) {
    const float4 xv = x4[i], yv = y4[i];
    out4[i] = make_float4(fmaf(a, xv.x, yv.x), fmaf(a, xv.y, yv.y), fmaf(a, xv.z, yv.z), fmaf(a, xv.w, yv.w));
  }
  for (int64_t i = 4 * n4 + first; i < n; i += stride) out[i] = fmaf(a, x[i], y[i]);
}

extern "C" cudaError_t launch_saxpy_scalar(int64_t n, float a, const float* x, const float* y, float* out,
                                           cudaStream_t stream) {
  constexpr int kBlock = 256;
  if (n == 0) return cudaSuccess;
  saxpy_scalar<<<blocks_to_fill_gpu(saxpy_scalar, kBlock, n), kBlock, 0, stream>>>(n, a, x, y, out);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_saxpy_float4(int64_t n, float a, const float* x, const float* y, float* out,
                                           cudaStream_t stream) {
  constexpr int kBlock = 256;
  if (n == 0) return cudaSuccess;
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(y) | reinterpret_cast<uintptr_t>(out)) % 16)
    return cudaErrorMisalignedAddress;
  const int blocks = blocks_to_fill_gpu(saxpy_float4, kBlock, ceil_div(n, 4));
  saxpy_float4<<<blocks, kBlock, 0, stream>>>(n, a, x, y, out);
  return cudaGetLastError();
}
