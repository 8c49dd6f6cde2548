// Latency hiding: a chain of dependent loads, run at a chosen number of warps per SM.
//
// Each thread follows `hops` links of a random permutation far larger than L2: every load needs the
// previous one's answer, so a warp has exactly one load in flight and waits a full DRAM latency
// (~0.6-0.8 us) per hop. The SM hides that wait only by switching to another resident warp, so by
// Little's law throughput grows with the warps per SM until the memory system, not latency, is the
// limit. Residency is set without touching the code path: each block asks for dynamic shared memory it
// never uses, so that only `blocks_per_sm` blocks of 128 threads (4 warps) fit on an SM.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

constexpr int kBlock = 128;

__global__ void chase_kernel(const int32_t* __restrict__ next, const int32_t* __restrict__ start,
                             int32_t* __restrict__ out, int64_t chains, int hops) {
  extern __shared__ int32_t unused_padding[];  // only there to limit blocks per SM
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= chains) return;
  int32_t p = start[i];
  for (int h = 0; h < hops; ++h) p = next[p];
  out[i] = p;
}

namespace {
cudaError_t smem_for(int blocks_per_sm, int* smem) {
  *smem = 0;
  if (blocks_per_sm <= 0) return cudaSuccess;
  int device = 0, per_sm = 0, reserved = 0, optin = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err != cudaSuccess) return err;
  // The largest request that still lets blocks_per_sm blocks fit, but not one more.
  int bytes = per_sm / blocks_per_sm - reserved;
  bytes = (bytes / 256) * 256;
  *smem = bytes < optin ? bytes : optin;
  return cudaFuncSetAttribute(chase_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, *smem);
}
}  // namespace

extern "C" cudaError_t launch_chase(int blocks_per_sm, const int32_t* next, const int32_t* start, int32_t* out,
                                    int64_t chains, int hops, cudaStream_t stream) {
  if (chains <= 0) return cudaSuccess;
  int smem = 0;
  cudaError_t err = smem_for(blocks_per_sm, &smem);
  if (err != cudaSuccess) return err;
  chase_kernel<<<unsigned(ceil_div(chains, kBlock)), kBlock, size_t(smem), stream>>>(next, start, out, chains, hops);
  return cudaGetLastError();
}

extern "C" cudaError_t chase_info(int blocks_per_sm, int* smem_bytes, int* resident_blocks, int* warp_size,
                                  int* sm_count) {
  cudaError_t err = smem_for(blocks_per_sm, smem_bytes);
  int device = 0;
  if (err == cudaSuccess) err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(warp_size, cudaDevAttrWarpSize, device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(sm_count, cudaDevAttrMultiProcessorCount, device);
  if (err == cudaSuccess)
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(resident_blocks, chase_kernel, kBlock, size_t(*smem_bytes));
  return err;
}
