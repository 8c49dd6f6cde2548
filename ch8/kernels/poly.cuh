// The polynomial both divergence.cu and unrolling.cu evaluate, with its degree fixed at compile time.
#pragma once
#include <cuda_bf16.h>

constexpr int kPolyDegree = 32;

// Horner's rule, P(u) = c[0] + u * (c[1] + u * (... + u * c[kPolyDegree])). With the degree known
// here, the loop unrolls completely and c[] can be an array of registers.
__device__ __forceinline__ float horner(float u, const float (&c)[kPolyDegree + 1]) {
  float acc = c[kPolyDegree];
#pragma unroll
  for (int k = kPolyDegree - 1; k >= 0; --k) acc = fmaf(acc, u, c[k]);
  return acc;
}

// Each thread loads the coefficients once (a grid-stride loop then reuses them for many elements).
__device__ __forceinline__ void load_coeffs(const float* __restrict__ coeffs, float (&c)[kPolyDegree + 1]) {
#pragma unroll
  for (int k = 0; k <= kPolyDegree; ++k) c[k] = coeffs[k];
}
