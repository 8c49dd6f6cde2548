// Warp divergence: a branch per element vs one path with the branch's parameters selected.
//
// A piecewise function of a threshold: below it y = gain_lo * P(scale_lo * (x - t)), above it
// y = gain_hi * P(scale_hi * (x - t)), with P a degree-32 polynomial (enough arithmetic per element
// that the instruction stream, not memory, sets the time). Written with if/else, a warp whose 32
// elements fall on both sides runs both branches one after the other, half its lanes idle in each:
// with random data nearly every warp does, and pays for two polynomials per element. Both sides are
// the same computation with different (gain, scale), so the predicated kernel selects the pair with
// a conditional move and evaluates one polynomial: no branch, no idle lanes.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"
#include "poly.cuh"

constexpr int kBlock = 256;

extern "C" int poly_degree() { return kPolyDegree; }

struct Sides {
  float threshold, scale_lo, gain_lo, scale_hi, gain_hi;
};

__global__ void piecewise_branchy(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ y,
                                  const float* __restrict__ coeffs, Sides s, int64_t n) {
  float c[kPolyDegree + 1];
  load_coeffs(coeffs, c);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = __bfloat162float(x[i]);
    float out;
    if (v > s.threshold)
      out = s.gain_hi * horner(s.scale_hi * (v - s.threshold), c);
    else
      out = s.gain_lo * horner(s.scale_lo * (v - s.threshold), c);
    y[i] = __float2bfloat16_rn(out);
  }
}

__global__ void piecewise_predicated(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ y,
                                     const float* __restrict__ coeffs, Sides s, int64_t n) {
  float c[kPolyDegree + 1];
  load_coeffs(coeffs, c);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = __bfloat162float(x[i]);
    const bool hi = v > s.threshold;
    const float scale = hi ? s.scale_hi : s.scale_lo;  // selects, not branches
    const float gain = hi ? s.gain_hi : s.gain_lo;
    y[i] = __float2bfloat16_rn(gain * horner(scale * (v - s.threshold), c));
  }
}

template <typename Kernel>
static cudaError_t launch(Kernel kernel, const uint16_t* x, uint16_t* y, const float* coeffs, Sides s, int64_t n,
                          cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  kernel<<<blocks_to_fill_gpu(kernel, kBlock, n), kBlock, 0, stream>>>(
      reinterpret_cast<const __nv_bfloat16*>(x), reinterpret_cast<__nv_bfloat16*>(y), coeffs, s, n);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_piecewise_branchy(const uint16_t* x, uint16_t* y, const float* coeffs, float threshold,
                                                float scale_lo, float gain_lo, float scale_hi, float gain_hi,
                                                int64_t n, cudaStream_t stream) {
  return launch(piecewise_branchy, x, y, coeffs, Sides{threshold, scale_lo, gain_lo, scale_hi, gain_hi}, n, stream);
}

extern "C" cudaError_t launch_piecewise_predicated(const uint16_t* x, uint16_t* y, const float* coeffs,
                                                   float threshold, float scale_lo, float gain_lo, float scale_hi,
                                                   float gain_hi, int64_t n, cudaStream_t stream) {
  return launch(piecewise_predicated, x, y, coeffs, Sides{threshold, scale_lo, gain_lo, scale_hi, gain_hi}, n,
                stream);
}
