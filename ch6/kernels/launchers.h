// The launchers this chapter's .cu files export, declared once: the .cu files include this (so the
// compiler checks each definition against it) and so does binding.cpp. Each launcher takes raw
// device pointers, sizes and a stream, and returns the launch's error code.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// vector_add.cu
cudaError_t launch_add_one_thread(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream);
cudaError_t launch_add_per_element(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream);
// indexing.cu
cudaError_t launch_affine_2d(const float* x, const float* row_scale, const float* col_bias, float* out,
                             int64_t rows, int64_t cols, cudaStream_t stream);
cudaError_t launch_affine_1d_grid_stride(const float* x, const float* row_scale, const float* col_bias, float* out,
                                         int64_t rows, int64_t cols, cudaStream_t stream);
// rows_per_thread in {1, 2, 4, 8} and block_y in [1, 32]; 0 picks the default
cudaError_t launch_affine_2d_float4(const float* x, const float* row_scale, const float* col_bias, float* out,
                                    int64_t rows, int64_t cols, int rows_per_thread, int block_y, cudaStream_t stream);
// saxpy.cu
cudaError_t launch_saxpy_scalar(int64_t n, float a, const float* x, const float* y, float* out, cudaStream_t stream);
cudaError_t launch_saxpy_float4(int64_t n, float a, const float* x, const float* y, float* out, cudaStream_t stream);
// occupancy.cu
cudaError_t launch_silu_fixed_block(const float* x, float* out, int64_t n, cudaStream_t stream);
cudaError_t launch_silu_occupancy_api(const float* x, float* out, int64_t n, cudaStream_t stream);
// block 0: the occupancy API's choice; vecs in {1, 2, 4, 8}, 0: the default; waves 0: one block per chunk of
// work, > 0: at most that many times the resident blocks (balanced), < 0: the default
cudaError_t launch_silu_float4(const float* x, float* out, int64_t n, int block, int vecs, int waves,
                               cudaStream_t stream);
cudaError_t silu_occupancy_choice(int* min_grid, int* block);
cudaError_t silu_float4_occupancy_choice(int* min_grid, int* block);
cudaError_t silu_blocks_per_sm(int grid_stride_kernel, int block, int* blocks);
}
