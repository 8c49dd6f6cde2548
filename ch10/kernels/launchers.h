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
cudaError_t launch_gemm_ws_persistent_mma_overlap(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n,
                                                  int k, cudaStream_t stream);
// cluster.cu: a histogram of n int32 values, each in [0, bins) (not checked), into hist[bins] (zeroed first);
// global atomics vs clusters of 4 CTAs sharing the bins through distributed shared memory (sm_90+, bins % 4 == 0)
cudaError_t launch_histogram_global_atomics(const int32_t* x, int64_t n, int32_t* hist, int bins, cudaStream_t stream);
cudaError_t launch_histogram_cluster_dsmem(const int32_t* x, int64_t n, int32_t* hist, int bins, cudaStream_t stream);
// cluster.cu: `steps` smoothing steps of x[n] into out, scratch[n] as the second buffer; one launch per step
// vs one cooperative launch with a grid barrier between steps
cudaError_t launch_smooth_per_step(const float* x, float* out, float* scratch, int64_t n, int steps,
                                   cudaStream_t stream);
cudaError_t launch_smooth_grid_sync(const float* x, float* out, float* scratch, int64_t n, int steps,
                                    cudaStream_t stream);
}

// ---- blackwell_gemm.cu (sm_100a; compiled, never run): the same C = A @ B^T with tcgen05 and TMEM ----
// Same arguments and rules as the Hopper launchers; on any GPU but compute capability 10.0 they return
// cudaErrorInvalidDeviceFunction without launching.
extern "C" {
cudaError_t launch_gemm_tcgen05_1stage(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                       cudaStream_t stream);
cudaError_t launch_gemm_tcgen05_pipelined(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                          cudaStream_t stream);
cudaError_t launch_gemm_tcgen05_persistent(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n, int k,
                                           cudaStream_t stream);
}

// ---- hopper_gemm_fp8.cu (sm_90a) --------------------------------------------------------------------
extern "C" {
// C[m, n] = (A[m, k] @ B[n, k]^T) * scale_a[0] * scale_b[0]: A, B float8 e4m3 (raw bytes), the scales fp32 scalars
// in device memory, fp32 accumulation, bf16 out; k % 16 == 0 and 16-byte aligned A and B (TMA's rules), else
// cudaErrorInvalidValue
cudaError_t launch_gemm_fp8_pipelined(const uint8_t* a, const uint8_t* b, const float* scale_a, const float* scale_b,
                                      uint16_t* c, int m, int n, int k, cudaStream_t stream);
cudaError_t launch_gemm_fp8_ws_persistent(const uint8_t* a, const uint8_t* b, const float* scale_a,
                                          const float* scale_b, uint16_t* c, int m, int n, int k, cudaStream_t stream);
cudaError_t launch_gemm_fp8_ws_persistent_mma_overlap(const uint8_t* a, const uint8_t* b, const float* scale_a,
                                                      const float* scale_b, uint16_t* c, int m, int n, int k,
                                                      cudaStream_t stream);
}

// ---- megakernel.cu: a chain of `layers` small layers, h <- tanh(W_l h + b_l), for x[batch, width] (batch <= 8),
// w[layers, width, width] and bias[layers, width], all fp32; the result in out, scratch[batch, width] as the second
// buffer, arrived[layers] as the split-barrier kernel's counters (the others ignore it). One launch per layer;
// those launches as a CUDA graph; one cooperative launch with grid.sync(); one with per-layer arrival counters.
extern "C" {
cudaError_t launch_tanh_chain_per_layer(const float* w, const float* bias, const float* x, float* out, float* scratch,
                                        unsigned* arrived, int batch, int width, int layers, cudaStream_t stream);
cudaError_t launch_tanh_chain_graph(const float* w, const float* bias, const float* x, float* out, float* scratch,
                                    unsigned* arrived, int batch, int width, int layers, cudaStream_t stream);
cudaError_t launch_tanh_chain_grid_sync(const float* w, const float* bias, const float* x, float* out, float* scratch,
                                        unsigned* arrived, int batch, int width, int layers, cudaStream_t stream);
cudaError_t launch_tanh_chain_split_barrier(const float* w, const float* bias, const float* x, float* out,
                                            float* scratch, unsigned* arrived, int batch, int width, int layers,
                                            cudaStream_t stream);
}
