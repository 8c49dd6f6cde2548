// The launchers this chapter's .cu files export, declared once: the .cu files include this (so the
// compiler checks each definition against it) and so does binding.cpp. Each takes raw pointers, sizes
// and the caller's stream, and returns the first CUDA error it met.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// overlap_pipeline.cu: host_out = f(host_in) chunk by chunk, f = `iters` dependent FMAs per element;
// chunk i copied in, computed and copied out on stream i % n_streams (n_streams == 1: on `stream`).
// host_in and host_out are pinned; dev_in and dev_out are device buffers of n elements each.
// Returns when host_out holds every result.
cudaError_t launch_overlap_pipeline(const float* host_in, float* host_out, float* dev_in, float* dev_out, int64_t n,
                                    int chunks, int n_streams, int iters, cudaStream_t stream);
// stream_alloc.cu: out = sum over it < iters of (x * (it + 1) + 1), through a temporary buffer allocated
// and freed every iteration: mode 0 cudaMalloc/cudaFree, 1 cudaMallocFromPoolAsync/cudaFreeAsync from a
// pool that keeps its memory (release threshold: max), 2 the same from a pool that returns it at every
// synchronization (threshold 0). out must be zeroed.
cudaError_t launch_alloc_loop(const float* x, float* out, int64_t n, int iters, int mode, cudaStream_t stream);
}
