// The launchers this chapter's .cu files export, declared once: the .cu files include this (so the
// compiler checks each definition against it) and so does binding.cpp. Each launcher takes raw
// device pointers, sizes and a stream, and returns the launch's error code.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// occupancy.cu: out[i] = table[idx[i]] * scale (mode 0) or a 128-wide pooled lookup (mode 1).
// min_blocks_per_sm: 0 = no __launch_bounds__, else __launch_bounds__(256, min_blocks_per_sm) (4 or 8).
cudaError_t launch_gather(int min_blocks_per_sm, const float* table, int64_t table_size, const int32_t* idx,
                          float* out, int64_t n, float scale, int mode, cudaStream_t stream);
// Registers per thread, local-memory (spill) bytes per thread and resident blocks per SM of one variant.
cudaError_t gather_kernel_info(int min_blocks_per_sm, int* registers, int* local_bytes, int* blocks_per_sm);
// ilp.cu: out[r] = sum of row r of a row-major [rows, cols] matrix; accumulators: 1, 4 or 8
cudaError_t launch_row_sum(int accumulators, const float* x, float* out, int64_t rows, int64_t cols,
                           cudaStream_t stream);
// divergence.cu: y = gain * P(scale * (x - threshold)), gain and scale picked by the side of the threshold;
// P has kPolyDegree + 1 coefficients. bf16 passed as raw 16-bit words.
int poly_degree();
cudaError_t launch_piecewise_branchy(const uint16_t* x, uint16_t* y, const float* coeffs, float threshold,
                                     float scale_lo, float gain_lo, float scale_hi, float gain_hi, int64_t n,
                                     cudaStream_t stream);
cudaError_t launch_piecewise_predicated(const uint16_t* x, uint16_t* y, const float* coeffs, float threshold,
                                        float scale_lo, float gain_lo, float scale_hi, float gain_hi, int64_t n,
                                        cudaStream_t stream);
// unrolling.cu: y = P(x) with `degree` + 1 coefficients; the fixed-degree kernel needs degree == poly_degree()
cudaError_t launch_poly_runtime_degree(const uint16_t* x, uint16_t* y, const float* coeffs, int degree, int64_t n,
                                       cudaStream_t stream);
cudaError_t launch_poly_fixed_degree(const uint16_t* x, uint16_t* y, const float* coeffs, int degree, int64_t n,
                                     cudaStream_t stream);
}
