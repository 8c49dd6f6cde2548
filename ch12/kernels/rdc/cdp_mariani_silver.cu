// Mariani-Silver with dynamic parallelism (CDP2): a block whose region needs refining launches a child
// grid of 4 x 4 blocks for its subregions itself, from the device. No host round trip per level, and
// no work lists; but every refined region costs a device-side launch, and a child grid of 16 blocks
// is small work for a launch. Built with -rdc=true and linked with cudadevrt (see ../__init__.py);
// without -rdc (CI's plain compile) the launcher returns cudaErrorNotSupported.
#include <cstdint>
#include <cuda_runtime.h>

#include "../mariani_silver.cuh"
#include "rdc.h"

namespace {

__global__ void ms_cdp(int* dwells, MsWindow w, int x0, int y0, int s, int depth) {
  const int rx = x0 + blockIdx.x * s, ry = y0 + blockIdx.y * s;
  const bool split = ms_region(dwells, w, rx, ry, s, depth);
#if defined(__CUDACC_RDC__)
  if (split && threadIdx.x == 0)
    ms_cdp<<<dim3(kMsSubdiv, kMsSubdiv), kMsBlock>>>(dwells, w, rx, ry, s / kMsSubdiv, depth + 1);
#else
  if (split) __trap();  // unreachable: the launcher refuses to run without -rdc
#endif
}

}  // namespace

extern "C" int aisp_cdp_supported() {
#if defined(__CUDACC_RDC__)
  return 1;
#else
  return 0;
#endif
}

extern "C" int aisp_mariani_silver_cdp(int* dwells, int size, float x0, float y0, float x1, float y1, int max_dwell,
                                       cudaStream_t stream) {
  if (!aisp_cdp_supported()) return cudaErrorNotSupported;
  if (size <= 0 || size % (kMsInitSubdiv * kMsMinSize) != 0 || max_dwell < 1) return cudaErrorInvalidValue;
  // Launches waiting to run at once, per device: the default (2048) is too few for this refinement.
  static bool limit_set[64] = {};
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  if (device < 64 && !limit_set[device]) {
    if ((err = cudaDeviceSetLimit(cudaLimitDevRuntimePendingLaunchCount, 1 << 15)) != cudaSuccess) return err;
    limit_set[device] = true;
  }
  const MsWindow w{size, x0, y0, x1, y1, max_dwell};
  ms_cdp<<<dim3(kMsInitSubdiv, kMsInitSubdiv), kMsBlock, 0, stream>>>(dwells, w, 0, 0, size / kMsInitSubdiv, 1);
  return cudaGetLastError();
}

extern "C" const char* aisp_error_string(int err) { return cudaGetErrorString(cudaError_t(err)); }
