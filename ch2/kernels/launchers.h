// The launchers this chapter's .cu files export, declared once: the .cu files include this (so the
// compiler checks each definition against it) and so does binding.cpp.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// managed.cu: unified (managed) memory, and the two hints that decide where its pages live.
cudaError_t managed_alloc(void** ptr, int64_t bytes);
cudaError_t managed_free(void* ptr);
// device >= 0: prefetch to that GPU; device < 0: to the host. Asynchronous on `stream`.
cudaError_t managed_prefetch(const void* ptr, int64_t bytes, int device, cudaStream_t stream);
// advice: cudaMemoryAdvise value (1 read-mostly, 3 preferred location, 5 accessed by); device < 0: the host.
cudaError_t managed_advise(const void* ptr, int64_t bytes, int advice, int device);

// latency.cu: out[i] = start[i] followed through `next` for `hops` dependent loads, with a grid of exactly
// blocks_per_sm 128-thread blocks per SM (grid-stride over the chains); 0: as many as fit.
cudaError_t launch_chase(int blocks_per_sm, const int32_t* next, const int32_t* start, int32_t* out, int64_t chains,
                         int hops, cudaStream_t stream);
// The blocks per SM a request launches, the most that fit (occupancy API), the warp size and the SM count.
cudaError_t chase_info(int blocks_per_sm, int* launch_per_sm, int* max_per_sm, int* warp_size, int* sm_count);
}
