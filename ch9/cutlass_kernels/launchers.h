// The launchers this extension's .cu files export (CUTLASS GEMMs), declared once for the .cu files and
// binding.cpp. C[M, N] = A[M, K] @ B[N, K]^T (both operands K-major, nn.Linear's layout), bf16 data as raw
// 16-bit words, fp32 accumulation. Both need K and N to be multiples of 8 (16-byte rows for the vector and
// TMA loads) and return cudaErrorInvalidValue otherwise; ch9/cutlass_gemm.py pads other shapes.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// gemm_sm90.cu: CUTLASS 3, TMA + wgmma, warp-specialized cooperative persistent kernel (sm_90a; 9.0 only)
cudaError_t launch_cutlass_gemm_sm90(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                     cudaStream_t stream);
// gemm_sm80.cu: CUTLASS 2.x device::Gemm, mma.sync + cp.async multistage (sm_80+)
cudaError_t launch_cutlass_gemm_sm80(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                     cudaStream_t stream);
}
