// One elementwise operation on a row-major [rows, cols] matrix, indexed two ways:
//   out[r][c] = x[r][c] * row_scale[r] + col_bias[c]
// A 2D grid gives each thread its (row, col) directly; a 1D grid-stride loop treats the matrix as one
// flat array and recovers (row, col) by division. Both are one pass over memory, where PyTorch eager
// takes two (x * scale, then + bias, with a temporary in between).
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

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
