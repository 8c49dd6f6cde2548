// What the separately built device-runtime library exports (../__init__.py loads it with ctypes).
// These need relocatable device code (-rdc=true) and the device runtime (cudadevrt): a kernel that
// launches kernels (CDP2) or graphs (device graph launch). Each returns a cudaError_t as an int.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

extern "C" {
// 1 when built with -rdc=true; 0 from a plain compile, where the launchers return cudaErrorNotSupported.
int aisp_cdp_supported();
const char* aisp_error_string(int err);
// The line of device_graph_launch.cu where its last failure happened (0: none), for error messages.
int aisp_error_line();
// cdp_mariani_silver.cu: the same image as launch_mariani_silver_multipass, refined by child grids.
int aisp_mariani_silver_cdp(int* dwells, int size, float x0, float y0, float x1, float y1, int max_dwell,
                            cudaStream_t stream);
// device_graph_launch.cu: y = path_a(x) if sum(x) > 0 else path_b(x), each path a graph of small kernels.
// route_host: the host reads the decision back and launches the chosen graph; route_device: a kernel
// decides and launches the graph from the device. Both use the same kernels (the device path's graphs are
// instantiated for device launch, the host path's plainly).
int aisp_route_host(const float* x, float* y, int64_t n, cudaStream_t stream);
int aisp_route_device(const float* x, float* y, int64_t n, cudaStream_t stream);
}
