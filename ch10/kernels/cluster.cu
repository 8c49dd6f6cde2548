// Cooperation beyond one thread block.
// 1. A histogram too large for one CTA's shared memory (65536 int32 bins = 256 KiB): a cluster of CLUSTER
//    CTAs holds it in distributed shared memory, each CTA one slice; every thread adds into whichever
//    CTA's slice owns the bin (cluster.map_shared_rank), and the slices go to global memory once at the
//    end. The baseline adds every element straight into global memory with atomics (sm_90+: clusters).
// 2. An iterative 1D smoothing, x <- (x[i-1] + x[i] + x[i+1]) / 3 with fixed ends, `steps` times: one
//    launch per step (the kernel boundary is the barrier) vs one cooperative launch whose steps are
//    separated by a grid-wide barrier (cooperative_groups::this_grid().sync()).
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "aisp/launch.cuh"
#include "launchers.h"

namespace cg = cooperative_groups;

namespace {

constexpr int CLUSTER = 4;
constexpr int HIST_THREADS = 512;

__global__ void histogram_global_atomics(const int32_t* x, int64_t n, int32_t* hist) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    atomicAdd(&hist[x[i]], 1);
}

__global__ void histogram_cluster_dsmem(const int32_t* x, int64_t n, int32_t* hist, int bins) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ int32_t slice[];  // bins / CLUSTER counters: this CTA's share of the histogram
  cg::cluster_group cluster = cg::this_cluster();
  const int per_cta = bins / CLUSTER;
  for (int i = threadIdx.x; i < per_cta; i += blockDim.x) slice[i] = 0;
  cluster.sync();  // every slice is zeroed before any CTA adds into it
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int v = x[i];
    int32_t* owner = cluster.map_shared_rank(slice, v / per_cta);  // a shared-memory address in another CTA
    atomicAdd(owner + v % per_cta, 1);
  }
  cluster.sync();  // all adds into this slice have landed, and no CTA leaves while others still write to it
  const int first = int(cluster.block_rank()) * per_cta;
  for (int i = threadIdx.x; i < per_cta; i += blockDim.x)
    if (slice[i]) atomicAdd(&hist[first + i], slice[i]);
#endif
}

__device__ __forceinline__ void smooth(const float* in, float* out, int64_t n, int64_t i) {
  out[i] = (i == 0 || i == n - 1) ? in[i] : (in[i - 1] + in[i] + in[i + 1]) / 3.0f;
}

// Step t writes `out` when steps-1-t is even, else `scratch`: the last step lands in out, and no step
// reads the buffer it writes.
__host__ __device__ __forceinline__ float* step_dst(int t, int steps, float* out, float* scratch) {
  return ((steps - 1 - t) % 2 == 0) ? out : scratch;
}

__global__ void smooth_step(const float* in, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    smooth(in, out, n, i);
}

__global__ void smooth_all_steps(const float* x, float* out, float* scratch, int64_t n, int steps) {
  cg::grid_group grid = cg::this_grid();
  const float* src = x;
  for (int t = 0; t < steps; ++t) {
    float* dst = step_dst(t, steps, out, scratch);
    for (int64_t i = grid.thread_rank(); i < n; i += grid.size()) smooth(src, dst, n, i);
    grid.sync();  // step t is complete everywhere before any thread reads it
    src = dst;
  }
}

}  // namespace

extern "C" cudaError_t launch_histogram_global_atomics(const int32_t* x, int64_t n, int32_t* hist, int bins,
                                                        cudaStream_t stream) {
  cudaError_t err = cudaMemsetAsync(hist, 0, sizeof(int32_t) * bins, stream);
  if (err != cudaSuccess || n == 0) return err;
  const int grid = blocks_to_fill_gpu(histogram_global_atomics, HIST_THREADS, n);
  histogram_global_atomics<<<grid, HIST_THREADS, 0, stream>>>(x, n, hist);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_histogram_cluster_dsmem(const int32_t* x, int64_t n, int32_t* hist, int bins,
                                                       cudaStream_t stream) {
  if (bins % CLUSTER != 0) return cudaErrorInvalidValue;
  cudaError_t err = cudaMemsetAsync(hist, 0, sizeof(int32_t) * bins, stream);
  if (err != cudaSuccess || n == 0) return err;
  const size_t smem = sizeof(int32_t) * (bins / CLUSTER);
  err = cudaFuncSetAttribute(histogram_cluster_dsmem, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (err != cudaSuccess) return err;
  int grid = blocks_to_fill_gpu(histogram_cluster_dsmem, HIST_THREADS, n, smem);
  grid = int(ceil_div(grid, CLUSTER) * CLUSTER);  // whole clusters
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(grid);
  config.blockDim = dim3(HIST_THREADS);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = CLUSTER;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  config.attrs = attr;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, histogram_cluster_dsmem, x, n, hist, bins);
}

extern "C" cudaError_t launch_smooth_per_step(const float* x, float* out, float* scratch, int64_t n, int steps,
                                              cudaStream_t stream) {
  if (steps < 1 || n < 1) return cudaErrorInvalidValue;
  const int threads = 256, grid = blocks_to_fill_gpu(smooth_step, threads, n);
  const float* src = x;
  for (int t = 0; t < steps; ++t) {
    float* dst = step_dst(t, steps, out, scratch);
    smooth_step<<<grid, threads, 0, stream>>>(src, dst, n);
    src = dst;
  }
  return cudaGetLastError();
}

extern "C" cudaError_t launch_smooth_grid_sync(const float* x, float* out, float* scratch, int64_t n, int steps,
                                               cudaStream_t stream) {
  if (steps < 1 || n < 1) return cudaErrorInvalidValue;
  int device = 0, sms = 1, per_sm = 0, cooperative = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device);
  if (!cooperative) return cudaErrorNotSupported;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  const int threads = 256;
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, smooth_all_steps, threads, 0);
  // A grid barrier needs every block resident at once: never more blocks than fit, nor more than the work.
  const int64_t fit = int64_t(sms) * (per_sm > 0 ? per_sm : 1);
  const int grid = int(ceil_div(n, threads) < fit ? ceil_div(n, threads) : fit);
  void* args[] = {(void*)&x, (void*)&out, (void*)&scratch, (void*)&n, (void*)&steps};
  return cudaLaunchCooperativeKernel(reinterpret_cast<void*>(smooth_all_steps), dim3(grid), dim3(threads), args, 0,
                                     stream);
}
