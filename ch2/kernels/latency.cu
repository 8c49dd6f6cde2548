// Latency hiding: chains of dependent loads, run with a chosen number of warps per SM.
//
// Each thread follows `hops` links of a random permutation far larger than L2: every load needs the
// previous one's answer, so a warp has exactly one load in flight and waits a full DRAM latency
// (~0.6-1 us with TLB misses) per hop. The SM hides that wait only by issuing from another resident
// warp, so by Little's law throughput grows with the warps per SM until the memory system, not latency,
// is the limit. Residency is set by the grid alone: exactly `blocks_per_sm` blocks of 128 threads (4
// warps) per SM, each thread taking chains in a grid-stride loop, so every variant runs the same code.
// (Limiting residency by requesting unused shared memory would also shrink the L1, which holds the
// lines of loads in flight, and cap the very parallelism being measured.)
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

constexpr int kBlock = 128;

__global__ void chase_kernel(const int32_t* __restrict__ next, const int32_t* __restrict__ start,
                             int32_t* __restrict__ out, int64_t chains, int hops) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < chains; i += stride) {
    int32_t p = start[i];
    for (int h = 0; h < hops; ++h) p = next[p];
    out[i] = p;
  }
}

namespace {
// Blocks per SM to launch: the request, capped at what fits; 0 asks for the most that fit.
cudaError_t plan(int blocks_per_sm, int* launch_per_sm, int* max_per_sm, int* sm_count) {
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(sm_count, cudaDevAttrMultiProcessorCount, device);
  if (err == cudaSuccess) err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(max_per_sm, chase_kernel, kBlock, 0);
  if (err != cudaSuccess) return err;
  *launch_per_sm = (blocks_per_sm <= 0 || blocks_per_sm > *max_per_sm) ? *max_per_sm : blocks_per_sm;
  return cudaSuccess;
}
}  // namespace

extern "C" cudaError_t launch_chase(int blocks_per_sm, const int32_t* next, const int32_t* start, int32_t* out,
                                    int64_t chains, int hops, cudaStream_t stream) {
  if (chains <= 0) return cudaSuccess;
  int per_sm = 0, max_per_sm = 0, sms = 0;
  cudaError_t err = plan(blocks_per_sm, &per_sm, &max_per_sm, &sms);
  if (err != cudaSuccess) return err;
  const int64_t blocks = int64_t(sms) * per_sm;
  const int64_t needed = ceil_div(chains, kBlock);
  chase_kernel<<<unsigned(blocks < needed ? blocks : needed), kBlock, 0, stream>>>(next, start, out, chains, hops);
  return cudaGetLastError();
}

extern "C" cudaError_t chase_info(int blocks_per_sm, int* launch_per_sm, int* max_per_sm, int* warp_size, int* sm_count) {
  cudaError_t err = plan(blocks_per_sm, launch_per_sm, max_per_sm, sm_count);
  int device = 0;
  if (err == cudaSuccess) err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(warp_size, cudaDevAttrWarpSize, device);
  return err;
}
