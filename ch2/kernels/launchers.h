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

// latency.cu: out[i] = start[i] followed through `next` for `hops` dependent loads. blocks_per_sm > 0
// limits residency to that many 128-thread blocks per SM with unused dynamic shared memory; 0: no limit.
cudaError_t launch_chase(int blocks_per_sm, const int32_t* next, const int32_t* start, int32_t* out, int64_t chains,
                         int hops, cudaStream_t stream);
// The dynamic shared memory a residency limit takes, the blocks per SM the occupancy API then reports, and
// the warp size and SM count of the current device.
cudaError_t chase_info(int blocks_per_sm, int* smem_bytes, int* resident_blocks, int* warp_size, int* sm_count);
}
