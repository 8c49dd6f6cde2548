// Matrix transpose, out[c][r] = in[r][c]. Every kernel covers a 32 x 32 tile per block.
//   naive:         blocks of 32 x 8 threads, four rows per thread; reads a tile row by row
//                  (coalesced) and writes it column by column: neighbouring threads write addresses a
//                  whole output row apart, so every store is scattered.
//   tiled:         stages the tile in shared memory, then writes it out row by row, so both global
//                  reads and writes are coalesced. Reading a *column* of a [32][32] float tile hits
//                  one shared-memory bank 32 times (address stride 32 words = 32 banks): a 32-way
//                  bank conflict, serialized.
//   tiled_padded:  the same with one extra float per tile row ([32][33]): a column now steps 33
//                  words, a different bank per row, and the conflict is gone.
//   tiled_float4:  the padded tile with 16-byte global loads and stores: a thread reads four
//                  neighbouring floats of a row at once, and writes four neighbouring floats of an
//                  output row, gathered from a column of the tile (still conflict-free: see below).
// The tiled kernels take the rows per pass (blockDim.y) as a template parameter: fewer rows per pass
// means more elements per thread, more loads in flight per thread (scripts/tune_memory_kernels.py).
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

constexpr int kTile = 32;
constexpr int kNaiveRowsPerPass = 8;
// Defaults (scripts/tune_memory_kernels.py times the alternatives).
constexpr int kDefaultRowsPerPass = 8;         // tiled, tiled_padded: 32 x 8 threads, 4 elements per thread
constexpr int kDefaultFloat4RowsPerPass = 16;  // tiled_float4: 8 x 16 threads, 2 float4 per thread

__global__ void transpose_naive(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
  const int c = blockIdx.x * kTile + threadIdx.x;
  const int r0 = blockIdx.y * kTile + threadIdx.y;
  for (int j = 0; j < kTile; j += kNaiveRowsPerPass) {
    const int r = r0 + j;
    if (r < rows && c < cols) out[int64_t(c) * rows + r] = in[int64_t(r) * cols + c];
  }
}

template <int kPad, int kRowsPerPass>
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

// Blocks of 8 x kRowsPerPass threads; thread x owns floats [4x, 4x + 4) of a tile row. Needs rows and
// cols multiples of 4 and 16-byte aligned tensors (the launcher checks), so a float4 is either wholly
// inside the matrix or wholly outside it. Banks, with the [32][33] tile: a warp is 8 threads along a
// row times 4 rows. Writing tile[y][4x + k] (fixed k) hits bank (33y + 4x + k) % 32 = (y + 4x + k) % 32:
// 32 different banks. Reading tile[4x + k][y] hits (4x + k + y) % 32: 32 different banks again.
template <int kRowsPerPass>
__global__ void transpose_tiled_float4(const float* __restrict__ in, float* __restrict__ out, int rows, int cols) {
  __shared__ float tile[kTile][kTile + 1];
  constexpr int kPerThread = kTile / kRowsPerPass;
  const int tx = threadIdx.x, ty = threadIdx.y;  // tx in [0, 8)
  int r = blockIdx.y * kTile + ty;
  int c = blockIdx.x * kTile + 4 * tx;
  float4 v[kPerThread];
#pragma unroll
  for (int j = 0; j < kPerThread; ++j)
    if (r + j * kRowsPerPass < rows && c < cols)
      v[j] = *reinterpret_cast<const float4*>(in + int64_t(r + j * kRowsPerPass) * cols + c);
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    float* row = tile[ty + j * kRowsPerPass] + 4 * tx;
    row[0] = v[j].x;
    row[1] = v[j].y;
    row[2] = v[j].z;
    row[3] = v[j].w;
  }
  __syncthreads();
  // Output row (an input column) blockIdx.x * 32 + ty + j; its floats [4tx, 4tx + 4) within the tile
  // are input rows 4tx .. 4tx + 3 of that column: tile[4tx + k][ty + j].
  r = blockIdx.x * kTile + ty;
  c = blockIdx.y * kTile + 4 * tx;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int col = ty + j * kRowsPerPass;
    if (r + j * kRowsPerPass < cols && c < rows)
      *reinterpret_cast<float4*>(out + int64_t(r + j * kRowsPerPass) * rows + c) =
          make_float4(tile[4 * tx][col], tile[4 * tx + 1][col], tile[4 * tx + 2][col], tile[4 * tx + 3][col]);
  }
}

static bool shape_ok(int64_t rows, int64_t cols, dim3 grid) {
  return rows <= INT32_MAX && cols <= INT32_MAX && grid.y <= 65535;
}

extern "C" cudaError_t launch_transpose_naive(const float* in, float* out, int64_t rows, int64_t cols,
                                              cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  const dim3 grid(unsigned(ceil_div(cols, kTile)), unsigned(ceil_div(rows, kTile)));
  if (!shape_ok(rows, cols, grid)) return cudaErrorInvalidValue;
  transpose_naive<<<grid, dim3(kTile, kNaiveRowsPerPass), 0, stream>>>(in, out, int(rows), int(cols));
  return cudaGetLastError();
}

template <int kPad>
static cudaError_t launch_tiled(const float* in, float* out, int64_t rows, int64_t cols, int rows_per_pass,
                                cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  const dim3 grid(unsigned(ceil_div(cols, kTile)), unsigned(ceil_div(rows, kTile)));
  if (!shape_ok(rows, cols, grid)) return cudaErrorInvalidValue;
  if (rows_per_pass == 0) rows_per_pass = kDefaultRowsPerPass;
  const int r = int(rows), c = int(cols);
  switch (rows_per_pass) {
    case 16: transpose_tiled<kPad, 16><<<grid, dim3(kTile, 16), 0, stream>>>(in, out, r, c); break;
    case 8: transpose_tiled<kPad, 8><<<grid, dim3(kTile, 8), 0, stream>>>(in, out, r, c); break;
    case 4: transpose_tiled<kPad, 4><<<grid, dim3(kTile, 4), 0, stream>>>(in, out, r, c); break;
    case 2: transpose_tiled<kPad, 2><<<grid, dim3(kTile, 2), 0, stream>>>(in, out, r, c); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

extern "C" cudaError_t launch_transpose_tiled(const float* in, float* out, int64_t rows, int64_t cols,
                                              int rows_per_pass, cudaStream_t stream) {
  return launch_tiled<0>(in, out, rows, cols, rows_per_pass, stream);
}

extern "C" cudaError_t launch_transpose_tiled_padded(const float* in, float* out, int64_t rows, int64_t cols,
                                                     int rows_per_pass, cudaStream_t stream) {
  return launch_tiled<1>(in, out, rows, cols, rows_per_pass, stream);
}

extern "C" cudaError_t launch_transpose_tiled_float4(const float* in, float* out, int64_t rows, int64_t cols,
                                                     int rows_per_pass, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  const bool aligned = (reinterpret_cast<uintptr_t>(in) | reinterpret_cast<uintptr_t>(out)) % 16 == 0;
  if (rows % 4 || cols % 4 || !aligned)  // a float4 would straddle rows: the scalar padded tile does it
    return launch_tiled<1>(in, out, rows, cols, 0, stream);
  const dim3 grid(unsigned(ceil_div(cols, kTile)), unsigned(ceil_div(rows, kTile)));
  if (!shape_ok(rows, cols, grid)) return cudaErrorInvalidValue;
  if (rows_per_pass == 0) rows_per_pass = kDefaultFloat4RowsPerPass;
  const int r = int(rows), c = int(cols);
  switch (rows_per_pass) {
    case 32: transpose_tiled_float4<32><<<grid, dim3(kTile / 4, 32), 0, stream>>>(in, out, r, c); break;
    case 16: transpose_tiled_float4<16><<<grid, dim3(kTile / 4, 16), 0, stream>>>(in, out, r, c); break;
    case 8: transpose_tiled_float4<8><<<grid, dim3(kTile / 4, 8), 0, stream>>>(in, out, r, c); break;
    case 4: transpose_tiled_float4<4><<<grid, dim3(kTile / 4, 4), 0, stream>>>(in, out, r, c); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}
