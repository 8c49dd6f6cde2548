// Matrix transpose, out[c][r] = in[r][c], three ways. Blocks of 32 x 8 threads each cover a 32 x 32
// tile, four rows per thread.
//   naive:         reads a tile row by row (coalesced) and writes it column by column: neighbouring
//                  threads write addresses a whole output row apart, so every store is scattered.
//   tiled:         stages the tile in shared memory, then writes it out row by row, so both global
//                  reads and writes are coalesced. Reading a *column* of a [32][32] float tile hits
//                  one shared-memory bank 32 times (address stride 32 words = 32 banks): a 32-way
//                  bank conflict, serialized.
//   tiled_padded:  the same with one extra float per tile row ([32][33]): a column now steps 33
//                  words, a different bank per row, and the conflict is gone.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

constexpr int kTile = 32;
constexpr int kRowsPerPass = 8;  // blockDim.y: each thread handles kTile / kRowsPerPass rows

__global__ void transpose_naive(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
  const int c = blockIdx.x * kTile + threadIdx.x;
  const int r0 = blockIdx.y * kTile + threadIdx.y;
  for (int j = 0; j < kTile; j += kRowsPerPass) {
    const int r = r0 + j;
    if (r < rows && c < cols) out[int64_t(c) * rows + r] = in[int64_t(r) * cols + c];
  }
}

template <int kPad>
__global__ void transpose_tiled(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
  __shared__ float tile[kTile][kTile + kPad];
  // Read the tile [r0, r0 + 32) x [c0, c0 + 32) row by row: threadIdx.x runs along a row of `in`.
  int c = blockIdx.x * kTile + threadIdx.x;
  int r = blockIdx.y * kTile + threadIdx.y;
  for (int j = 0; j < kTile; j += kRowsPerPass)
    if (r + j < rows && c < cols) tile[threadIdx.y + j][threadIdx.x] = in[int64_t(r + j) * cols + c];
  __syncthreads();
  // Write it transposed, threadIdx.x again running along a row, now a row of `out`: the warp reads
  // tile[x][y + j] for x = 0..31, a walk down one column of the shared tile.
  c = blockIdx.y * kTile + threadIdx.x;  // a column index of `out` is a row index of `in`
  r = blockIdx.x * kTile + threadIdx.y;
  for (int j = 0; j < kTile; j += kRowsPerPass)
    if (r + j < cols && c < rows) out[int64_t(r + j) * rows + c] = tile[threadIdx.x][threadIdx.y + j];
}

static cudaError_t launch(int which, const float* in, float* out, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  const dim3 block(kTile, kRowsPerPass);
  const dim3 grid(unsigned(ceil_div(cols, kTile)), unsigned(ceil_div(rows, kTile)));
  if (rows > INT32_MAX || cols > INT32_MAX || grid.y > 65535) return cudaErrorInvalidValue;
  if (which == 0) transpose_naive<<<grid, block, 0, stream>>>(in, out, int(rows), int(cols));
  if (which == 1) transpose_tiled<0><<<grid, block, 0, stream>>>(in, out, int(rows), int(cols));
  if (which == 2) transpose_tiled<1><<<grid, block, 0, stream>>>(in, out, int(rows), int(cols));
  return cudaGetLastError();
}

extern "C" cudaError_t launch_transpose_naive(const float* in, float* out, int64_t rows, int64_t cols,
                                              cudaStream_t stream) {
  return launch(0, in, out, rows, cols, stream);
}

extern "C" cudaError_t launch_transpose_tiled(const float* in, float* out, int64_t rows, int64_t cols,
                                              cudaStream_t stream) {
  return launch(1, in, out, rows, cols, stream);
}

extern "C" cudaError_t launch_transpose_tiled_padded(const float* in, float* out, int64_t rows, int64_t cols,
                                                     cudaStream_t stream) {
  return launch(2, in, out, rows, cols, stream);
}
