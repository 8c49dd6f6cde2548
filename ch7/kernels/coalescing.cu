// Coalesced vs strided access: the same out = x * alpha over a row-major [rows, cols] matrix, with two
// ways of mapping threads to elements, and the coalesced one with several loads in flight per thread.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "aisp/grid.cuh"
#include "launchers.h"

// Defaults of the coalesced_ilp kernel (scripts/tune_memory_kernels.py times the alternatives).
constexpr int kDefaultElems = 4;   // independent 4-byte loads in flight per thread
constexpr int kDefaultBlock = 256;
constexpr int kDefaultWaves = 0;   // one block per chunk of work

// Thread t takes element t: the 32 threads of a warp read 32 neighbouring floats, 128 contiguous
// bytes, which the memory system serves as four full 32-byte sectors.
__global__ void scale_coalesced(const float* __restrict__ x, float* __restrict__ out, float alpha, int64_t n) {
  int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t < n) out[t] = x[t] * alpha;
}

// Still coalesced, still 4-byte accesses, but each thread issues kElems loads (blockDim.x apart, so
// each one is coalesced across the warp) before it stores any: kElems times the bytes in flight per
// thread. One load per thread keeps 8 KB in flight on a full SM; HBM3e needs several times that
// (Little's law: bytes in flight = bandwidth x latency). Chapter 8's ilp_accumulators is this idea.
template <int kElems>
__global__ void scale_coalesced_ilp(const float* __restrict__ x, float* __restrict__ out, float alpha, int64_t n) {
  const int64_t chunk = int64_t(kElems) * blockDim.x;
  for (int64_t base = blockIdx.x * chunk + threadIdx.x; base < n; base += gridDim.x * chunk) {
    float v[kElems];
#pragma unroll
    for (int k = 0; k < kElems; ++k)
      if (base + k * blockDim.x < n) v[k] = x[base + k * blockDim.x];
#pragma unroll
    for (int k = 0; k < kElems; ++k)
      if (base + k * blockDim.x < n) out[base + k * blockDim.x] = v[k] * alpha;
  }
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

template <int kElems>
static cudaError_t launch_ilp(const float* x, float* out, float alpha, int64_t n, int block, int waves,
                              cudaStream_t stream) {
  const auto kernel = scale_coalesced_ilp<kElems>;
  const unsigned grid = balanced_grid(ceil_div(n, int64_t(kElems) * block), resident_blocks(kernel, block), waves);
  kernel<<<grid, block, 0, stream>>>(x, out, alpha, n);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_scale_coalesced_ilp(const float* x, float* out, float alpha, int64_t rows, int64_t cols,
                                                  int elems, int block, int waves, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n == 0) return cudaSuccess;
  if (elems == 0) elems = kDefaultElems;
  if (block == 0) block = kDefaultBlock;
  if (waves < 0) waves = kDefaultWaves;
  if (block < 32 || block > 1024 || block % 32) return cudaErrorInvalidValue;
  switch (elems) {
    case 1: return launch_ilp<1>(x, out, alpha, n, block, waves, stream);
    case 2: return launch_ilp<2>(x, out, alpha, n, block, waves, stream);
    case 4: return launch_ilp<4>(x, out, alpha, n, block, waves, stream);
    case 8: return launch_ilp<8>(x, out, alpha, n, block, waves, stream);
    default: return cudaErrorInvalidValue;
  }
}
