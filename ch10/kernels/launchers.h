// The launchers this chapter's .cu files export, declared once: the .cu files include this (so the
// compiler checks each definition against it) and so does binding.cpp. Each takes raw device pointers,
// sizes and a stream, and returns the launch's error code. bf16 data is passed as raw 16-bit words.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// hopper_gemm.cu (sm_90a): C[m, n] = A[m, k] @ B[n, k]^T, bf16 in, fp32 accumulation, bf16 out; k % 8 == 0
// and 16-byte aligned A and B (TMA's rules), else cudaErrorInvalidValue
cudaError_t launch_gemm_tma_wgmma_1stage(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                         cudaStream_t stream);
cudaError_t launch_gemm_tma_wgmma_pipelined(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                            cudaStream_t stream);
cudaError_t launch_gemm_warp_specialized(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                         cudaStream_t stream);
cudaError_t launch_gemm_warp_specialized_persistent(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n,
                                                    int k, cudaStream_t stream);
}
