// Fusion: work that PyTorch does as several kernels (each reading and writing the whole tensor) done in one.
//   l2norm_fused          out[r, :] = x[r, :] / max(||x[r, :]||, 1e-12): one warp per row, sum of squares in
//                         fp32, a warp reduction, then the row scaled; the row's second read hits L1/L2, so
//                         DRAM sees one read and one write (PyTorch eager: a reduction kernel, then a divide)
//   l2norm_fused_regs     the same with the row held in registers of a 128-thread block: every thread issues
//                         all its 16-byte loads before the reduction (up to 8: rows of up to 8192 bf16), so x
//                         is read once from DRAM with many loads in flight, and the scaling reads registers
//   bias_gelu_residual    out = gelu(x + bias) + residual (erf GELU): one read of x and residual, one write
//                         (PyTorch eager: three kernels, three reads and writes of the whole tensor)
//   bias_gelu_residual_rows  the same with each thread owning 8 columns (its bias loaded once, no 64-bit
//                         modulo per vector) and 4 rows a step: 8 independent 16-byte loads in flight a thread
// bf16 in and out, fp32 arithmetic, one rounding at the end; 16-byte loads (8 bf16) where the row length is a
// multiple of 8 and the pointers are 16-byte aligned, else element by element.
#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

namespace {

using bf16 = __nv_bfloat16;
constexpr int kBlock = 256, kRowsPerBlock = kBlock / 32;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ void unpack(const uint4& u, float (&f)[8]) {
  const bf16* h = reinterpret_cast<const bf16*>(&u);
#pragma unroll
  for (int e = 0; e < 8; ++e) f[e] = __bfloat162float(h[e]);
}

__device__ __forceinline__ uint4 pack(const float (&f)[8]) {
  uint4 u;
  bf16* h = reinterpret_cast<bf16*>(&u);
#pragma unroll
  for (int e = 0; e < 8; ++e) h[e] = __float2bfloat16_rn(f[e]);
  return u;
}

template <bool kVec>
__global__ void __launch_bounds__(kBlock) l2norm_fused(const bf16* __restrict__ x, bf16* __restrict__ out,
                                                       int64_t rows, int64_t cols) {
  const int lane = threadIdx.x % 32;
  for (int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32; r < rows;
       r += int64_t(gridDim.x) * kRowsPerBlock) {
    const bf16* xr = x + r * cols;
    bf16* outr = out + r * cols;
    float ss = 0.f;
    if (kVec) {
      const uint4* xv = reinterpret_cast<const uint4*>(xr);
      for (int64_t v = lane; v < cols / 8; v += 32) {
        float f[8];
        unpack(xv[v], f);
#pragma unroll
        for (int e = 0; e < 8; ++e) ss = fmaf(f[e], f[e], ss);
      }
    } else {
      for (int64_t i = lane; i < cols; i += 32) {
        const float f = __bfloat162float(xr[i]);
        ss = fmaf(f, f, ss);
      }
    }
    const float inv = 1.f / fmaxf(sqrtf(warp_sum(ss)), 1e-12f);  // F.normalize's eps
    if (kVec) {
      const uint4* xv = reinterpret_cast<const uint4*>(xr);
      uint4* ov = reinterpret_cast<uint4*>(outr);
      for (int64_t v = lane; v < cols / 8; v += 32) {
        float f[8];
        unpack(xv[v], f);
#pragma unroll
        for (int e = 0; e < 8; ++e) f[e] *= inv;
        ov[v] = pack(f);
      }
    } else {
      for (int64_t i = lane; i < cols; i += 32) outr[i] = __float2bfloat16_rn(__bfloat162float(xr[i]) * inv);
    }
  }
}

__device__ __forceinline__ float gelu_erf(float h) { return 0.5f * h * (1.f + erff(h * 0.70710678118654752f)); }

template <bool kVec>
__global__ void __launch_bounds__(kBlock) bias_gelu_residual(const bf16* __restrict__ x, const bf16* __restrict__ bias,
                                                             const bf16* __restrict__ residual, bf16* __restrict__ out,
                                                             int64_t n, int64_t cols) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (kVec) {  // cols % 8 == 0: a vector never straddles two rows, and its bias is one aligned vector too
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    const uint4* rv = reinterpret_cast<const uint4*>(residual);
    const uint4* bv = reinterpret_cast<const uint4*>(bias);
    uint4* ov = reinterpret_cast<uint4*>(out);
    const int64_t cols8 = cols / 8;
    for (int64_t v = first; v < n / 8; v += stride) {
      float fx[8], fr[8], fb[8];
      unpack(xv[v], fx);
      unpack(rv[v], fr);
      unpack(bv[v % cols8], fb);
#pragma unroll
      for (int e = 0; e < 8; ++e) fx[e] = gelu_erf(fx[e] + fb[e]) + fr[e];
      ov[v] = pack(fx);
    }
  } else {
    for (int64_t i = first; i < n; i += stride)
      out[i] = __float2bfloat16_rn(gelu_erf(__bfloat162float(x[i]) + __bfloat162float(bias[i % cols])) +
                                   __bfloat162float(residual[i]));
  }
}

// A block of kRowThreads holds a row in registers, kPer 16-byte vectors a thread (rows of up to
// kPer * kRowThreads * 8 bf16), all loaded before any arithmetic; the four warps' sums meet in shared memory.
// A warp holding a whole 4096-element row needed 161 registers a thread: one block per SM, 11% occupancy (ncu).
constexpr int kRowThreads = 128;

template <int kPer>
__global__ void __launch_bounds__(kRowThreads) l2norm_fused_regs(const bf16* __restrict__ x, bf16* __restrict__ out,
                                                                 int64_t rows, int cols8) {
  __shared__ float warp_sums[kRowThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const uint4* xv = reinterpret_cast<const uint4*>(x + r * cols8 * 8);
    uint4 v[kPer];
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int c = threadIdx.x + kRowThreads * i;
      v[i] = c < cols8 ? xv[c] : make_uint4(0u, 0u, 0u, 0u);  // bf16 zeros add nothing to the sum
    }
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      float f[8];
      unpack(v[i], f);
#pragma unroll
      for (int e = 0; e < 8; ++e) ss = fmaf(f[e], f[e], ss);
    }
    ss = warp_sum(ss);
    if (lane == 0) warp_sums[warp] = ss;
    __syncthreads();
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < kRowThreads / 32; ++w) total += warp_sums[w];
    const float inv = 1.f / fmaxf(sqrtf(total), 1e-12f);
    uint4* ov = reinterpret_cast<uint4*>(out + r * cols8 * 8);
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int c = threadIdx.x + kRowThreads * i;
      if (c < cols8) {
        float f[8];
        unpack(v[i], f);
#pragma unroll
        for (int e = 0; e < 8; ++e) f[e] *= inv;
        ov[c] = pack(f);
      }
    }
    __syncthreads();  // warp_sums is the next row's
  }
}

constexpr int kRowsPerStep = 4;

// grid.x covers the row's 16-byte vectors (one per thread), grid.y strides over rows kRowsPerStep at a time.
__global__ void __launch_bounds__(kBlock) bias_gelu_residual_rows(const uint4* __restrict__ xv,
                                                                  const uint4* __restrict__ bv,
                                                                  const uint4* __restrict__ rv,
                                                                  uint4* __restrict__ ov, int64_t rows, int64_t cols8) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols8) return;
  float fb[8];
  unpack(bv[c], fb);
  for (int64_t r0 = int64_t(blockIdx.y) * kRowsPerStep; r0 < rows; r0 += int64_t(gridDim.y) * kRowsPerStep) {
    uint4 ux[kRowsPerStep], ur[kRowsPerStep];
#pragma unroll
    for (int i = 0; i < kRowsPerStep; ++i) {
      if (r0 + i < rows) {
        ux[i] = xv[(r0 + i) * cols8 + c];
        ur[i] = rv[(r0 + i) * cols8 + c];
      }
    }
#pragma unroll
    for (int i = 0; i < kRowsPerStep; ++i) {
      if (r0 + i < rows) {
        float fx[8], fr[8];
        unpack(ux[i], fx);
        unpack(ur[i], fr);
#pragma unroll
        for (int e = 0; e < 8; ++e) fx[e] = gelu_erf(fx[e] + fb[e]) + fr[e];
        ov[(r0 + i) * cols8 + c] = pack(fx);
      }
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

extern "C" cudaError_t launch_l2norm_fused(const uint16_t* x, uint16_t* out, int64_t rows, int64_t cols,
                                           cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const auto* px = reinterpret_cast<const bf16*>(x);
  auto* po = reinterpret_cast<bf16*>(out);
  const int64_t want = ceil_div(rows, kRowsPerBlock);
  const unsigned grid = unsigned(want < (1 << 30) ? want : (1 << 30));
  if (cols % 8 == 0 && aligned16(x) && aligned16(out))
    l2norm_fused<true><<<grid, kBlock, 0, stream>>>(px, po, rows, cols);
  else
    l2norm_fused<false><<<grid, kBlock, 0, stream>>>(px, po, rows, cols);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_bias_gelu_residual(const uint16_t* x, const uint16_t* bias, const uint16_t* residual,
                                                 uint16_t* out, int64_t rows, int64_t cols, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n <= 0) return cudaSuccess;
  const auto* px = reinterpret_cast<const bf16*>(x);
  const auto* pb = reinterpret_cast<const bf16*>(bias);
  const auto* pr = reinterpret_cast<const bf16*>(residual);
  auto* po = reinterpret_cast<bf16*>(out);
  if (cols % 8 == 0 && aligned16(x) && aligned16(bias) && aligned16(residual) && aligned16(out)) {
    const int grid = blocks_to_fill_gpu(bias_gelu_residual<true>, kBlock, n / 8);
    bias_gelu_residual<true><<<grid, kBlock, 0, stream>>>(px, pb, pr, po, n, cols);
  } else {
    const int grid = blocks_to_fill_gpu(bias_gelu_residual<false>, kBlock, n);
    bias_gelu_residual<false><<<grid, kBlock, 0, stream>>>(px, pb, pr, po, n, cols);
  }
  return cudaGetLastError();
}

extern "C" cudaError_t launch_l2norm_fused_regs(const uint16_t* x, uint16_t* out, int64_t rows, int64_t cols,
                                                cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const int64_t per_thread = ceil_div(cols / 8, kRowThreads);
  if (cols % 8 != 0 || per_thread > 8 || !aligned16(x) || !aligned16(out))
    return launch_l2norm_fused(x, out, rows, cols, stream);  // ragged or longer rows: the loop kernel
  const auto* px = reinterpret_cast<const bf16*>(x);
  auto* po = reinterpret_cast<bf16*>(out);
  const unsigned grid = unsigned(rows < (1 << 30) ? rows : (1 << 30));  // a block per row
  const int cols8 = int(cols / 8);
  if (per_thread <= 1) l2norm_fused_regs<1><<<grid, kRowThreads, 0, stream>>>(px, po, rows, cols8);
  else if (per_thread <= 2) l2norm_fused_regs<2><<<grid, kRowThreads, 0, stream>>>(px, po, rows, cols8);
  else if (per_thread <= 4) l2norm_fused_regs<4><<<grid, kRowThreads, 0, stream>>>(px, po, rows, cols8);
  else l2norm_fused_regs<8><<<grid, kRowThreads, 0, stream>>>(px, po, rows, cols8);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_bias_gelu_residual_rows(const uint16_t* x, const uint16_t* bias, const uint16_t* residual,
                                                      uint16_t* out, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  if (cols % 8 != 0 || !aligned16(x) || !aligned16(bias) || !aligned16(residual) || !aligned16(out))
    return launch_bias_gelu_residual(x, bias, residual, out, rows, cols, stream);  // the element-by-element path
  const int64_t cols8 = cols / 8, steps = ceil_div(rows, kRowsPerStep);
  const dim3 grid(unsigned(ceil_div(cols8, kBlock)), unsigned(steps < 65535 ? steps : 65535));
  bias_gelu_residual_rows<<<grid, kBlock, 0, stream>>>(
      reinterpret_cast<const uint4*>(x), reinterpret_cast<const uint4*>(bias), reinterpret_cast<const uint4*>(residual),
      reinterpret_cast<uint4*>(out), rows, cols8);
  return cudaGetLastError();
}
