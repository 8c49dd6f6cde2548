// A loop that needs a temporary buffer every iteration, three ways:
//   0 cudaMalloc / cudaFree: each is a driver call that maps or unmaps memory, and cudaFree waits for
//     the whole device to go idle first, so the host stalls every iteration and nothing queues ahead.
//   1 cudaMallocFromPoolAsync / cudaFreeAsync on a pool whose release threshold is "never": the free
//     is ordered on the stream, the next allocation reuses the same memory, the host never waits.
//   2 the same on a pool with release threshold 0: within a call the memory is reused, but at every
//     synchronization the pool hands it back to the driver, so each call starts by mapping it again.
// out = sum over it of (x * (it + 1) + 1), added in the same order in every mode (same bits).
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

namespace {

constexpr int kBlock = 256;
constexpr int kMaxDevices = 64;

__global__ void make_term(const float* __restrict__ x, float* __restrict__ tmp, int64_t n, float scale) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) tmp[i] = fmaf(x[i], scale, 1.0f);
}

__global__ void accumulate(const float* __restrict__ tmp, float* __restrict__ out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] += tmp[i];
}

// A pool per device and release threshold, made once.
cudaError_t pool_for_device(bool keep_memory, cudaMemPool_t* out) {
  static cudaMemPool_t pools[kMaxDevices][2] = {};
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  if (device >= kMaxDevices) return cudaErrorInvalidDevice;
  cudaMemPool_t& pool = pools[device][keep_memory ? 1 : 0];
  if (pool == nullptr) {
    cudaMemPoolProps props = {};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    if ((err = cudaMemPoolCreate(&pool, &props)) != cudaSuccess) return err;
    uint64_t threshold = keep_memory ? UINT64_MAX : 0;  // bytes the pool may keep across synchronizations
    if ((err = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold)) != cudaSuccess) return err;
  }
  *out = pool;
  return cudaSuccess;
}

}  // namespace

extern "C" cudaError_t launch_alloc_loop(const float* x, float* out, int64_t n, int iters, int mode,
                                         cudaStream_t stream) {
  if (n <= 0 || iters <= 0) return cudaSuccess;
  if (mode < 0 || mode > 2) return cudaErrorInvalidValue;
  cudaMemPool_t pool = nullptr;
  cudaError_t err = cudaSuccess;
  if (mode != 0 && (err = pool_for_device(mode == 1, &pool)) != cudaSuccess) return err;
  const size_t bytes = size_t(n) * sizeof(float);
  const unsigned blocks = unsigned(ceil_div(n, kBlock));
  for (int it = 0; it < iters; ++it) {
    float* tmp = nullptr;
    err = mode == 0 ? cudaMalloc(&tmp, bytes) : cudaMallocFromPoolAsync(reinterpret_cast<void**>(&tmp), bytes, pool, stream);
    if (err != cudaSuccess) return err;
    make_term<<<blocks, kBlock, 0, stream>>>(x, tmp, n, float(it + 1));
    accumulate<<<blocks, kBlock, 0, stream>>>(tmp, out, n);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
    err = mode == 0 ? cudaFree(tmp) : cudaFreeAsync(tmp, stream);
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}
