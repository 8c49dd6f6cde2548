// The launchers this chapter's .cu files export, declared once: the .cu files include this (so the
// compiler checks each definition against it) and so does binding.cpp. Each launcher takes raw
// device pointers, sizes and a stream, and returns the launch's error code.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// coalescing.cu: out = x * alpha over a row-major [rows, cols] matrix
cudaError_t launch_scale_coalesced(const float* x, float* out, float alpha, int64_t rows, int64_t cols,
                                   cudaStream_t stream);
cudaError_t launch_scale_strided(const float* x, float* out, float alpha, int64_t rows, int64_t cols,
                                 cudaStream_t stream);
// elems in {1, 2, 4, 8}, block a multiple of 32 up to 1024, 0: the default; waves 0: one block per chunk,
// > 0: at most that many times the resident blocks (balanced), < 0: the default
cudaError_t launch_scale_coalesced_ilp(const float* x, float* out, float alpha, int64_t rows, int64_t cols, int elems,
                                       int block, int waves, cudaStream_t stream);
// vectorized.cu: out = x * alpha on bf16 data (passed as raw 16-bit words)
cudaError_t launch_scale_bf16_scalar(const uint16_t* x, uint16_t* out, float alpha, int64_t n, cudaStream_t stream);
cudaError_t launch_scale_bf16_vec16(const uint16_t* x, uint16_t* out, float alpha, int64_t n, cudaStream_t stream);
// transpose.cu: out[c][r] = in[r][c]; rows_per_pass (the block's height) 0 picks the default
cudaError_t launch_transpose_naive(const float* in, float* out, int64_t rows, int64_t cols, cudaStream_t stream);
cudaError_t launch_transpose_tiled(const float* in, float* out, int64_t rows, int64_t cols, int rows_per_pass,
                                   cudaStream_t stream);
cudaError_t launch_transpose_tiled_padded(const float* in, float* out, int64_t rows, int64_t cols, int rows_per_pass,
                                          cudaStream_t stream);
cudaError_t launch_transpose_tiled_float4(const float* in, float* out, int64_t rows, int64_t cols, int rows_per_pass,
                                          cudaStream_t stream);
// copy.cu: device-to-device copy of nbytes
cudaError_t launch_copy_scalar(const void* src, void* dst, int64_t nbytes, cudaStream_t stream);
cudaError_t launch_copy_vec16(const void* src, void* dst, int64_t nbytes, cudaStream_t stream);
cudaError_t launch_copy_vec16_x4(const void* src, void* dst, int64_t nbytes, cudaStream_t stream);
// stencil.cu: out[i] = sum_k taps[k] * x[i + k - kRadius], zero outside [0, n); n % 4 == 0;
// stages: tiles in shared memory at once (2, 3 or 4; 0 picks the default)
int stencil_radius();
cudaError_t launch_stencil_plain(const float* x, float* out, const float* taps, int64_t n, cudaStream_t stream);
cudaError_t launch_stencil_cp_async(const float* x, float* out, const float* taps, int64_t n, int stages,
                                    cudaStream_t stream);
cudaError_t launch_stencil_bulk_copy(const float* x, float* out, const float* taps, int64_t n, int stages,
                                     cudaStream_t stream);
}
