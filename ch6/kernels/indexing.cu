// One elementwise operation on a row-major [rows, cols] matrix, indexed two ways:
//   out[r][c] = x[r][c] * row_scale[r] + col_bias[c]
// A 2D grid gives each thread its (row, col) directly; a 1D grid-stride loop treats the matrix as one
// flat array and recovers (row, col) by division. Both are one pass over memory, where PyTorch eager
// takes two (x * scale, then + bias, with a temporary in between).
// Both also move one 4-byte word per thread: a full SM keeps 8 KB in flight, too little for HBM3e
// (Little's law: bytes in flight = bandwidth x latency). The float4 2D kernel moves 16 bytes per
// access along the row and has each thread load kRows rows before it stores any: 16 * kRows bytes in
// flight per thread, and no division (the grid's two dimensions are the row and the column).
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

// Defaults of the float4 kernel (scripts/tune_memory_kernels.py times the alternatives).
constexpr int kDefaultRows = 4;    // rows per thread: 64 bytes in flight per thread
constexpr int kDefaultBlockY = 8;  // block 32 x 8: 256 threads

// 2D: x walks columns so that the 32 threads of a warp touch 32 adjacent floats (one coalesced
// 128-byte access); y walks rows.
__global__ void affine_2d(const float* __restrict__ x, const float* __restrict__ row_scale,
                          const float* __restrict__ col_bias, float* __restrict__ out, int rows, int cols) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  int r = blockIdx.y * blockDim.y + threadIdx.y;
  if (r < rows && c < cols) {
    int64_t i = int64_t(r) * cols + c;
    out[i] = fmaf(x[i], row_scale[r], col_bias[c]);
  }
}

// 1D grid-stride: any grid covers any size; each thread strides by the whole grid.
__global__ void affine_1d_grid_stride(const float* __restrict__ x, const float* __restrict__ row_scale,
                                      const float* __restrict__ col_bias, float* __restrict__ out,
                                      int64_t rows, int64_t cols) {
  const int64_t n = rows * cols, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t r = i / cols, c = i - r * cols;
    out[i] = fmaf(x[i], row_scale[r], col_bias[c]);
  }
}

// 2D with float4 along the row: thread (x, y) of the block owns float4 column c4 and rows
// r0, r0 + blockDim.y, ... (kRows of them); a warp covers 128 adjacent floats of a row, 512 bytes.
// Needs cols % 4 == 0 and x, col_bias, out 16-byte aligned (the launcher checks).
template <int kRows>
__global__ void affine_2d_float4(const float* __restrict__ x, const float* __restrict__ row_scale,
                                 const float* __restrict__ col_bias, float* __restrict__ out, int rows, int cols) {
  const int cols4 = cols / 4;
  const int c4 = blockIdx.x * blockDim.x + threadIdx.x;
  if (c4 >= cols4) return;
  const float4 bias = reinterpret_cast<const float4*>(col_bias)[c4];
  const int r0 = blockIdx.y * (blockDim.y * kRows) + threadIdx.y;
  float4 v[kRows];
  float scale[kRows];
#pragma unroll
  for (int j = 0; j < kRows; ++j) {  // every load first ...
    const int r = r0 + j * blockDim.y;
    if (r < rows) {
      v[j] = reinterpret_cast<const float4*>(x + int64_t(r) * cols)[c4];
      scale[j] = row_scale[r];
    }
  }
#pragma unroll
  for (int j = 0; j < kRows; ++j) {  // ... then the arithmetic and the stores
    const int r = r0 + j * blockDim.y;
    if (r < rows)
      reinterpret_cast<float4*>(out + int64_t(r) * cols)[c4] =
          make_float4(fmaf(v[j].x, scale[j], bias.x), fmaf(v[j].y, scale[j], bias.y), fmaf(v[j].z, scale[j], bias.z),
                      fmaf(v[j].w, scale[j], bias.w));
  }
}

extern "C" cudaError_t launch_affine_2d(const float* x, const float* row_scale, const float* col_bias, float* out,
                                        int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  const dim3 block(32, 8);  // 256 threads: a warp spans 32 columns of one row
  const dim3 grid(unsigned(ceil_div(cols, block.x)), unsigned(ceil_div(rows, block.y)));
  if (rows > INT32_MAX || cols > INT32_MAX || grid.y > 65535) return cudaErrorInvalidValue;  // grid.y <= 65535
  affine_2d<<<grid, block, 0, stream>>>(x, row_scale, col_bias, out, int(rows), int(cols));
  return cudaGetLastError();
}

extern "C" cudaError_t launch_affine_1d_grid_stride(const float* x, const float* row_scale, const float* col_bias,
                                                    float* out, int64_t rows, int64_t cols, cudaStream_t stream) {
  constexpr int kBlock = 256;
  if (rows == 0 || cols == 0) return cudaSuccess;
  const int blocks = blocks_to_fill_gpu(affine_1d_grid_stride, kBlock, rows * cols);
  affine_1d_grid_stride<<<blocks, kBlock, 0, stream>>>(x, row_scale, col_bias, out, rows, cols);
  return cudaGetLastError();
}

template <int kRows>
static cudaError_t launch_affine_2d_float4_t(const float* x, const float* row_scale, const float* col_bias, float* out,
                                             int rows, int cols, int block_y, cudaStream_t stream) {
  const dim3 block(32, unsigned(block_y));
  const dim3 grid(unsigned(ceil_div(cols / 4, block.x)), unsigned(ceil_div(rows, int64_t(block_y) * kRows)));
  if (grid.y > 65535) return cudaErrorInvalidValue;
  affine_2d_float4<kRows><<<grid, block, 0, stream>>>(x, row_scale, col_bias, out, rows, cols);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_affine_2d_float4(const float* x, const float* row_scale, const float* col_bias,
                                               float* out, int64_t rows, int64_t cols, int rows_per_thread,
                                               int block_y, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (rows > INT32_MAX || cols > INT32_MAX) return cudaErrorInvalidValue;
  const bool aligned =
      (reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(col_bias) | reinterpret_cast<uintptr_t>(out)) %
          16 == 0;
  if (cols % 4 != 0 || !aligned)  // rows that do not start on 16 bytes: the scalar 2D kernel does it
    return launch_affine_2d(x, row_scale, col_bias, out, rows, cols, stream);
  if (rows_per_thread == 0) rows_per_thread = kDefaultRows;
  if (block_y == 0) block_y = kDefaultBlockY;
  if (block_y < 1 || block_y > 32) return cudaErrorInvalidValue;
  switch (rows_per_thread) {
    case 1: return launch_affine_2d_float4_t<1>(x, row_scale, col_bias, out, int(rows), int(cols), block_y, stream);
    case 2: return launch_affine_2d_float4_t<2>(x, row_scale, col_bias, out, int(rows), int(cols), block_y, stream);
    case 4: return launch_affine_2d_float4_t<4>(x, row_scale, col_bias, out, int(rows), int(cols), block_y, stream);
    case 8: return launch_affine_2d_float4_t<8>(x, row_scale, col_bias, out, int(rows), int(cols), block_y, stream);
    default: return cudaErrorInvalidValue;
  }
}
