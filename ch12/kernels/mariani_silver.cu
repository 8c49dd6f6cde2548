// Mariani-Silver driven from the host: one kernel launch per level of refinement. Each block takes a
// region from this level's work list (the first level: from its block index), fills or computes it,
// or appends its 16 subregions to the next level's list with one atomicAdd. The host reads how many
// regions the next level has (a copy and a synchronize per level) and launches exactly that many blocks.
#include <cstdint>
#include <cuda_runtime.h>

#include "launchers.h"
#include "mariani_silver.cuh"

namespace {

__global__ void ms_level(int* dwells, MsWindow w, const int4* regions, int top_size, int4* next, int* next_count) {
  // int4: x0, y0, size, depth
  const int4 r = regions ? regions[blockIdx.x]
                         : make_int4(blockIdx.x * top_size, blockIdx.y * top_size, top_size, 1);
  if (ms_region(dwells, w, r.x, r.y, r.z, r.w) && threadIdx.x == 0) {
    const int at = atomicAdd(next_count, kMsSubdiv * kMsSubdiv);
    const int s = r.z / kMsSubdiv;
    for (int k = 0; k < kMsSubdiv * kMsSubdiv; ++k)
      next[at + k] = make_int4(r.x + (k % kMsSubdiv) * s, r.y + (k / kMsSubdiv) * s, s, r.w + 1);
  }
}

}  // namespace

extern "C" int64_t ms_list_capacity(int size) { return ms_capacity(size); }
extern "C" int ms_size_multiple() { return kMsInitSubdiv * kMsMinSize; }

extern "C" cudaError_t launch_mariani_silver_multipass(int* dwells, int size, float x0, float y0, float x1, float y1,
                                                       int max_dwell, int4* regions_a, int4* regions_b, int* count,
                                                       cudaStream_t stream) {
  if (size <= 0 || size % ms_size_multiple() != 0 || max_dwell < 1) return cudaErrorInvalidValue;
  const MsWindow w{size, x0, y0, x1, y1, max_dwell};
  cudaError_t err = cudaMemsetAsync(count, 0, sizeof(int), stream);
  if (err != cudaSuccess) return err;
  ms_level<<<dim3(kMsInitSubdiv, kMsInitSubdiv), kMsBlock, 0, stream>>>(dwells, w, nullptr, size / kMsInitSubdiv,
                                                                        regions_a, count);
  for (int depth = 2; depth <= kMsMaxDepth; ++depth) {
    int regions = 0;
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
    if ((err = cudaMemcpyAsync(&regions, count, sizeof(int), cudaMemcpyDeviceToHost, stream)) != cudaSuccess) return err;
    if ((err = cudaStreamSynchronize(stream)) != cudaSuccess) return err;  // the host needs the count to launch
    if (regions == 0) break;
    if ((err = cudaMemsetAsync(count, 0, sizeof(int), stream)) != cudaSuccess) return err;
    ms_level<<<regions, kMsBlock, 0, stream>>>(dwells, w, regions_a, 0, regions_b, count);
    int4* t = regions_a;
    regions_a = regions_b;
    regions_b = t;
  }
  return cudaGetLastError();
}
