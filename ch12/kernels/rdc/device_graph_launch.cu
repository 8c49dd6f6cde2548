// Device graph launch: a kernel looks at the data and launches one of two prepared graphs itself.
// The work: y = path_a(x) if sum(x) > 0, else path_b(x); each path is a graph of kSteps small kernels.
//   route_host:   a kernel computes the decision, the host copies it back, waits for it, and launches
//                 the chosen graph: one host round trip between deciding and doing.
//   route_device: a kernel with the same decision code, the one node of a small host-launched graph,
//                 launches the chosen graph with cudaGraphLaunch(..., cudaStreamGraphTailLaunch) from
//                 the device: the chosen work starts when the deciding graph ends, with no host in
//                 between. Its path graphs are instantiated with cudaGraphInstantiateFlagDeviceLaunch
//                 and uploaded once. (A kernel that calls cudaGraphLaunch may run only inside a graph.)
// Graphs read fixed addresses: one set of static buffers per (device, n), x copied in, y copied out.
// Needs -rdc=true and cudadevrt (see ../__init__.py); a plain compile returns cudaErrorNotSupported.
#include <cstdint>
#include <cuda_runtime.h>
#include <map>
#include <utility>

#include "rdc.h"

// On failure: return the error, and remember the line for aisp_error_line().
#define AISP_TRY(expr)                   \
  do {                                   \
    cudaError_t aisp_err_ = (expr);      \
    if (aisp_err_ != cudaSuccess) {      \
      aisp_failed_line = __LINE__;       \
      return aisp_err_;                  \
    }                                    \
  } while (0)

static int aisp_failed_line = 0;
extern "C" int aisp_error_line() { return aisp_failed_line; }

namespace {

constexpr int kSteps = 8;
constexpr int kBlock = 256;
constexpr int kRouteThreads = 1024;

__global__ void affine(float* y, const float* src, int64_t n, float a, float b) {  // src may be y
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = fmaf(src[i], a, b);
}

// One block: sum(x) in a fixed order, so the decision is the same bits every time. 0: path a, 1: path b.
__device__ int choose(const float* __restrict__ x, int64_t n) {
  __shared__ float partial[kRouteThreads];
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += x[i];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  return partial[0] > 0.0f ? 0 : 1;
}

// For the host path: write the decision for the host to read.
__global__ void decide(const float* __restrict__ x, int64_t n, int* decision) {
  const int choice = choose(x, n);
  if (threadIdx.x == 0) *decision = choice;
}

// For the device path: launch the chosen graph. A kernel that calls cudaGraphLaunch may only run as
// a node of a graph (launched plainly, its launch fails with cudaErrorNotSupported), hence two kernels.
__global__ void decide_and_launch(const float* __restrict__ x, int64_t n, cudaGraphExec_t path_a,
                                  cudaGraphExec_t path_b, int* decision) {
  const int choice = choose(x, n);
  if (threadIdx.x == 0) {
    *decision = choice;
#if defined(__CUDACC_RDC__)
    cudaGraphLaunch(choice == 0 ? path_a : path_b, cudaStreamGraphTailLaunch);
#else
    (void)path_a, (void)path_b;
#endif
  }
}

struct Router {
  float *x = nullptr, *y = nullptr;
  int* decision = nullptr;            // device
  int* host_decision = nullptr;       // pinned host, for route_host
  cudaGraphExec_t host_path[2] = {};  // launched by the host (route_host)
  cudaGraphExec_t dev_path[2] = {};   // instantiated for device launch (route_device)
  cudaGraphExec_t launcher = nullptr;  // the host-launched graph whose kernel launches dev_path[choice]
};

cudaError_t add_kernel(cudaGraph_t g, cudaGraphNode_t* node, cudaGraphNode_t dep, void* func, unsigned blocks,
                       unsigned threads, void** args) {
  cudaKernelNodeParams p = {};
  p.func = func;
  p.gridDim = dim3(blocks);
  p.blockDim = dim3(threads);
  p.kernelParams = args;
  return cudaGraphAddKernelNode(node, g, dep ? &dep : nullptr, dep ? 1 : 0, &p);
}

cudaError_t build_path(Router& r, int64_t n, float a, float b, bool device_launch, cudaStream_t stream,
                       cudaGraphExec_t* exec) {
  cudaGraph_t g = nullptr;
  AISP_TRY(cudaGraphCreate(&g, 0));
  cudaGraphNode_t prev = nullptr;
  const unsigned blocks = unsigned((n + kBlock - 1) / kBlock);
  for (int step = 0; step < kSteps; ++step) {
    const float* src = step == 0 ? r.x : r.y;
    void* args[] = {&r.y, &src, &n, &a, &b};
    cudaGraphNode_t node = nullptr;
    AISP_TRY(add_kernel(g, &node, prev, reinterpret_cast<void*>(affine), blocks, kBlock, args));
    prev = node;
  }
  AISP_TRY(cudaGraphInstantiate(exec, g, device_launch ? cudaGraphInstantiateFlagDeviceLaunch : 0));
  if (device_launch) AISP_TRY(cudaGraphUpload(*exec, stream));  // must be on the device before a device launch
  return cudaGraphDestroy(g);
}

// One router per (device, n); its host or device graphs are made the first time they are needed.
cudaError_t router(int64_t n, bool on_device, cudaStream_t stream, Router** out) {
  static std::map<std::pair<int, int64_t>, Router> routers;
  int device = 0;
  AISP_TRY(cudaGetDevice(&device));
  Router& r = routers[std::make_pair(device, n)];
  if (r.x == nullptr) {
    AISP_TRY(cudaMalloc(&r.x, n * sizeof(float)));
    AISP_TRY(cudaMalloc(&r.y, n * sizeof(float)));
    AISP_TRY(cudaMalloc(&r.decision, sizeof(int)));
    AISP_TRY(cudaMallocHost(&r.host_decision, sizeof(int)));
  }
  if (!on_device && r.host_path[0] == nullptr) {
    AISP_TRY(build_path(r, n, 1.5f, 0.25f, false, stream, &r.host_path[0]));
    AISP_TRY(build_path(r, n, -0.5f, 2.0f, false, stream, &r.host_path[1]));
  }
  if (on_device && r.launcher == nullptr) {
    AISP_TRY(build_path(r, n, 1.5f, 0.25f, true, stream, &r.dev_path[0]));
    AISP_TRY(build_path(r, n, -0.5f, 2.0f, true, stream, &r.dev_path[1]));
    cudaGraph_t g = nullptr;
    AISP_TRY(cudaGraphCreate(&g, 0));
    void* args[] = {&r.x, &n, &r.dev_path[0], &r.dev_path[1], &r.decision};
    cudaGraphNode_t node = nullptr;
    AISP_TRY(add_kernel(g, &node, nullptr, reinterpret_cast<void*>(decide_and_launch), 1, kRouteThreads, args));
    AISP_TRY(cudaGraphInstantiate(&r.launcher, g, 0));
    AISP_TRY(cudaGraphUpload(r.launcher, stream));
    AISP_TRY(cudaGraphDestroy(g));
  }
  *out = &r;
  return cudaSuccess;
}

}  // namespace

extern "C" int aisp_route_host(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (!aisp_cdp_supported()) return cudaErrorNotSupported;
  if (n <= 0) return cudaErrorInvalidValue;
  Router* r = nullptr;
  AISP_TRY(router(n, false, stream, &r));
  AISP_TRY(cudaMemcpyAsync(r->x, x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  decide<<<1, kRouteThreads, 0, stream>>>(r->x, n, r->decision);
  AISP_TRY(cudaGetLastError());
  AISP_TRY(cudaMemcpyAsync(r->host_decision, r->decision, sizeof(int), cudaMemcpyDeviceToHost, stream));
  AISP_TRY(cudaStreamSynchronize(stream));  // the round trip that device launch removes
  AISP_TRY(cudaGraphLaunch(r->host_path[*r->host_decision], stream));
  return cudaMemcpyAsync(y, r->y, n * sizeof(float), cudaMemcpyDeviceToDevice, stream);
}

extern "C" int aisp_route_device(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (!aisp_cdp_supported()) return cudaErrorNotSupported;
  if (n <= 0) return cudaErrorInvalidValue;
  Router* r = nullptr;
  AISP_TRY(router(n, true, stream, &r));
  AISP_TRY(cudaMemcpyAsync(r->x, x, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  AISP_TRY(cudaGraphLaunch(r->launcher, stream));  // decides, then the chosen graph runs as its tail
  return cudaMemcpyAsync(y, r->y, n * sizeof(float), cudaMemcpyDeviceToDevice, stream);
}
