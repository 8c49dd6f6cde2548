// The launchers this chapter's .cu files export, declared once: the .cu files include this (so the
// compiler checks each definition against it) and so does binding.cpp. Each launcher takes raw
// device pointers, sizes and a stream, and returns the launch's error code. Matrices are row-major:
// C[M, N] = A[M, K] @ B[K, N]; bf16 data is passed as raw 16-bit words.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// sgemm.cu: fp32 GEMM by tiling level (fp32 FMAs throughout, no TF32)
cudaError_t launch_sgemm_naive(const float* a, const float* b, float* c, int m, int n, int k, cudaStream_t stream);
cudaError_t launch_sgemm_smem(const float* a, const float* b, float* c, int m, int n, int k, cudaStream_t stream);
cudaError_t launch_sgemm_regtile(const float* a, const float* b, float* c, int m, int n, int k, cudaStream_t stream);
// float4 loads and double-buffered shared memory where k % 4 == 0, n % 4 == 0 and the pointers are 16-byte
// aligned; otherwise the register-tiled kernel's scalar loads
cudaError_t launch_sgemm_regtile_vec4(const float* a, const float* b, float* c, int m, int n, int k,
                                      cudaStream_t stream);
// the register-tiled SIMT kernel on bf16 inputs (fp32 accumulation, bf16 output): wmma_gemm.py's baseline
cudaError_t launch_gemm_bf16_simt(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                  cudaStream_t stream);
// wmma_gemm.cu: bf16 tensor-core GEMM through nvcuda::wmma (sm_80+), fp32 accumulation, bf16 output
cudaError_t launch_gemm_bf16_wmma(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                  cudaStream_t stream);
// fusion.cu: out[r, :] = x[r, :] / max(||x[r, :]||_2, 1e-12), bf16 in and out, fp32 arithmetic
cudaError_t launch_l2norm_fused(const uint16_t* x, uint16_t* out, int64_t rows, int64_t cols, cudaStream_t stream);
// the same with the row in a block's registers (rows of up to 8192 elements, a multiple of 8; else launch_l2norm_fused)
cudaError_t launch_l2norm_fused_regs(const uint16_t* x, uint16_t* out, int64_t rows, int64_t cols,
                                     cudaStream_t stream);
// fusion.cu: out = gelu(x + bias) + residual (erf GELU) over [rows, cols] bf16, bias [cols]
cudaError_t launch_bias_gelu_residual(const uint16_t* x, const uint16_t* bias, const uint16_t* residual,
                                      uint16_t* out, int64_t rows, int64_t cols, cudaStream_t stream);
// the same, each thread owning 8 columns and 4 rows a step (cols a multiple of 8; else launch_bias_gelu_residual)
cudaError_t launch_bias_gelu_residual_rows(const uint16_t* x, const uint16_t* bias, const uint16_t* residual,
                                           uint16_t* out, int64_t rows, int64_t cols, cudaStream_t stream);
// inline_ptx.cu: out = alpha * x + y over n floats; plain C++ loads vs ld.global.nc.L1::no_allocate.v4.f32
cudaError_t launch_axpy_plain(const float* x, const float* y, float* out, float alpha, int64_t n, cudaStream_t stream);
cudaError_t launch_axpy_ptx_stream(const float* x, const float* y, float* out, float alpha, int64_t n,
                                   cudaStream_t stream);
}
