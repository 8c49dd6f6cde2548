// Loop unrolling: the same polynomial, y = P(x), with the degree a run-time argument vs a
// compile-time constant.
//
// With a run-time degree the loop cannot be unrolled completely, and registers cannot be indexed by
// a run-time value, so every element re-reads every coefficient from memory (L1 hits, but a load
// instruction and its latency per term) and pays the loop's counter and branch. With the degree
// fixed at compile time, #pragma unroll turns the loop into straight-line code, the coefficients are
// loaded once per thread into registers, and each term is a single FMA.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"
#include "poly.cuh"

constexpr int kBlock = 256;

__global__ void poly_runtime_degree(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ y,
                                    const float* __restrict__ coeffs, int degree, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float u = __bfloat162float(x[i]);
    float acc = coeffs[degree];
    for (int k = degree - 1; k >= 0; --k) acc = fmaf(acc, u, coeffs[k]);
    y[i] = __float2bfloat16_rn(acc);
  }
}

__global__ void poly_fixed_degree(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ y,
                                  const float* __restrict__ coeffs, int64_t n) {
  float c[kPolyDegree + 1];
  load_coeffs(coeffs, c);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = __float2bfloat16_rn(horner(__bfloat162float(x[i]), c));
}

extern "C" cudaError_t launch_poly_runtime_degree(const uint16_t* x, uint16_t* y, const float* coeffs, int degree,
                                                  int64_t n, cudaStream_t stream) {
  if (degree < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  poly_runtime_degree<<<blocks_to_fill_gpu(poly_runtime_degree, kBlock, n), kBlock, 0, stream>>>(
      reinterpret_cast<const __nv_bfloat16*>(x), reinterpret_cast<__nv_bfloat16*>(y), coeffs, degree, n);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_poly_fixed_degree(const uint16_t* x, uint16_t* y, const float* coeffs, int degree,
                                                int64_t n, cudaStream_t stream) {
  if (degree != kPolyDegree) return cudaErrorInvalidValue;  // this kernel is compiled for one degree
  if (n == 0) return cudaSuccess;
  poly_fixed_degree<<<blocks_to_fill_gpu(poly_fixed_degree, kBlock, n), kBlock, 0, stream>>>(
      reinterpret_cast<const __nv_bfloat16*>(x), reinterpret_cast<__nv_bfloat16*>(y), coeffs, n);
  return cudaGetLastError();
}
