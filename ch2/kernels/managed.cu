// Unified memory: one pointer valid on the host and the GPU, its pages moved on demand.
//
// Without hints, the first GPU touch of a page resident on the host raises a fault; the driver then
// migrates it (in growing chunks) while the warp waits, so a kernel streaming through freshly written
// host data runs at the speed of fault handling, not of the link. cudaMemPrefetchAsync moves the range
// in bulk ahead of the kernel; cudaMemAdvise(PreferredLocation = host, AccessedBy = GPU) instead keeps
// the pages on the host and maps them into the GPU, which then reads them over the link without faults.
// CUDA 13 passes locations as cudaMemLocation; CUDA 12 took a device ordinal.
#include <cstdint>
#include <cuda_runtime.h>

#include "launchers.h"

namespace {
#if CUDART_VERSION >= 13000
cudaMemLocation location(int device) {
  cudaMemLocation loc{};
  loc.type = device >= 0 ? cudaMemLocationTypeDevice : cudaMemLocationTypeHost;
  loc.id = device >= 0 ? device : 0;
  return loc;
}
#endif
}  // namespace

extern "C" cudaError_t managed_alloc(void** ptr, int64_t bytes) {
  return cudaMallocManaged(ptr, size_t(bytes), cudaMemAttachGlobal);
}

extern "C" cudaError_t managed_free(void* ptr) { return cudaFree(ptr); }

extern "C" cudaError_t managed_prefetch(const void* ptr, int64_t bytes, int device, cudaStream_t stream) {
#if CUDART_VERSION >= 13000
  return cudaMemPrefetchAsync(ptr, size_t(bytes), location(device), 0, stream);
#else
  return cudaMemPrefetchAsync(ptr, size_t(bytes), device >= 0 ? device : cudaCpuDeviceId, stream);
#endif
}

extern "C" cudaError_t managed_advise(const void* ptr, int64_t bytes, int advice, int device) {
#if CUDART_VERSION >= 13000
  return cudaMemAdvise(ptr, size_t(bytes), cudaMemoryAdvise(advice), location(device));
#else
  return cudaMemAdvise(ptr, size_t(bytes), cudaMemoryAdvise(advice), device >= 0 ? device : cudaCpuDeviceId);
#endif
}
