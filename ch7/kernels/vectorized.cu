// Scalar vs 16-byte vectorized loads on bf16 data: out = x * alpha (computed in fp32, rounded once).
// A scalar bf16 load moves 2 bytes per thread, 64 bytes per warp instruction; a 16-byte load moves 8
// elements per thread, 512 bytes per warp instruction: an eighth of the instructions, and many more
// bytes in flight per thread for the same occupancy.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

__device__ __forceinline__ __nv_bfloat16 scale(__nv_bfloat16 v, float alpha) {
  return __float2bfloat16_rn(__bfloat162float(v) * alpha);
}

__global__ void scale_bf16_scalar(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ out, float alpha,
                                  int64_t n) {
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = scale(x[i], alpha);
}

// Thread i moves elements [8i, 8i + 8) as one uint4; the first n % 8 threads also do one tail element.
// Needs x and out 16-byte aligned (the launcher checks).
__global__ void scale_bf16_vec16(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ out, float alpha,
                                 int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n8 = n / 8;
  if (i < n8) {
    uint4 packed = reinterpret_cast<const uint4*>(x)[i];
    __nv_bfloat16* v = reinterpret_cast<__nv_bfloat16*>(&packed);
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = scale(v[k], alpha);
    reinterpret_cast<uint4*>(out)[i] = packed;
  }
  if (i < n - 8 * n8) out[8 * n8 + i] = scale(x[8 * n8 + i], alpha);
}

extern "C" cudaError_t launch_scale_bf16_scalar(const uint16_t* x, uint16_t* out, float alpha, int64_t n,
                                                cudaStream_t stream) {
  constexpr int kBlock = 256;
  if (n == 0) return cudaSuccess;
  scale_bf16_scalar<<<unsigned(ceil_div(n, kBlock)), kBlock, 0, stream>>>(
      reinterpret_cast<const __nv_bfloat16*>(x), reinterpret_cast<__nv_bfloat16*>(out), alpha, n);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_scale_bf16_vec16(const uint16_t* x, uint16_t* out, float alpha, int64_t n,
                                               cudaStream_t stream) {
  constexpr int kBlock = 256;
  if (n == 0) return cudaSuccess;
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16) return cudaErrorMisalignedAddress;
  const int64_t threads = n / 8 > 8 ? n / 8 : 8;  // at least enough threads for the tail
  scale_bf16_vec16<<<unsigned(ceil_div(threads, kBlock)), kBlock, 0, stream>>>(
      reinterpret_cast<const __nv_bfloat16*>(x), reinterpret_cast<__nv_bfloat16*>(out), alpha, n);
  return cudaGetLastError();
}
