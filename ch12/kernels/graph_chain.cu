// N tiny dependent kernels, launched one by one or as a CUDA graph, and four ways to give a graph the
// addresses of this call's input and output:
//   eager:       n launches; each costs the host a driver call (~2 us) and the GPU a launch gap.
//   replay:      the graph is captured once per n on static buffers; a call copies x in, replays the
//                graph, and copies the result out (two tiny copies beside one launch).
//   set_params:  the instantiated graph is kept, and each of its n kernel nodes gets this call's
//                pointers with cudaGraphExecKernelNodeSetParams before the launch.
//   exec_update: each call captures a new graph (cheap: nothing runs) and cudaGraphExecUpdate folds it
//                into the kept executable graph (cheap when only parameters changed), then launches.
//   recapture:   each call captures, instantiates, launches and destroys a graph: what a graph costs
//                when it is never reused (instantiation is the expensive step).
// Every variant runs the same kernels in the same order, so results are bit-identical.
#include <cstdint>
#include <cuda_runtime.h>
#include <map>
#include <utility>
#include <vector>

#include "launchers.h"

namespace {

__global__ void chain_step(const float* in, float* out) {  // in may be out
  if (threadIdx.x == 0) out[0] = fmaf(in[0], 0.5f, 1.0f);
}

#define AISP_TRY(expr)                          \
  do {                                          \
    cudaError_t aisp_err_ = (expr);             \
    if (aisp_err_ != cudaSuccess) return aisp_err_; \
  } while (0)

cudaError_t enqueue_chain(const float* x, float* y, int n, cudaStream_t stream) {
  chain_step<<<1, 32, 0, stream>>>(x, y);
  for (int i = 1; i < n; ++i) chain_step<<<1, 32, 0, stream>>>(y, y);
  return cudaGetLastError();
}

// A private stream per device to capture on: capture records work, it runs nothing.
cudaError_t capture_stream(cudaStream_t* out) {
  static std::map<int, cudaStream_t> streams;
  int device = 0;
  AISP_TRY(cudaGetDevice(&device));
  auto it = streams.find(device);
  if (it == streams.end()) {
    cudaStream_t s = nullptr;
    AISP_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    it = streams.emplace(device, s).first;
  }
  *out = it->second;
  return cudaSuccess;
}

cudaError_t capture_chain(const float* x, float* y, int n, cudaGraph_t* graph) {
  cudaStream_t s = nullptr;
  AISP_TRY(capture_stream(&s));
  AISP_TRY(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  const cudaError_t launched = enqueue_chain(x, y, n, s);
  const cudaError_t ended = cudaStreamEndCapture(s, graph);
  return launched != cudaSuccess ? launched : ended;
}

struct Kept {
  cudaGraph_t graph = nullptr;         // kept: set_params names its nodes
  cudaGraphExec_t exec = nullptr;
  std::vector<cudaGraphNode_t> nodes;  // the kernel nodes, in chain order
  float* static_in = nullptr;          // replay only: the addresses the graph reads and writes
  float* static_out = nullptr;
};

// One executable graph per (device, n, variant), made on first use and kept for the process.
cudaError_t kept_graph(int n, int variant, const float* x, float* y, Kept** out) {
  static std::map<std::pair<int, int>, Kept> graphs[3];
  int device = 0;
  AISP_TRY(cudaGetDevice(&device));
  auto key = std::make_pair(device, n);
  auto it = graphs[variant].find(key);
  if (it == graphs[variant].end()) {
    Kept k;
    if (variant == 0) {
      AISP_TRY(cudaMalloc(&k.static_in, sizeof(float)));
      AISP_TRY(cudaMalloc(&k.static_out, sizeof(float)));
      x = k.static_in;
      y = k.static_out;
    }
    cudaGraph_t graph = nullptr;
    AISP_TRY(capture_chain(x, y, n, &graph));
    size_t count = 0;
    AISP_TRY(cudaGraphGetNodes(graph, nullptr, &count));
    std::vector<cudaGraphNode_t> nodes(count);
    AISP_TRY(cudaGraphGetNodes(graph, nodes.data(), &count));
    // A captured chain's nodes are one path; order them by following the edges from the root.
    k.nodes.reserve(count);
    cudaGraphNode_t node = nullptr;
    for (auto cand : nodes) {
      size_t deps = 0;
#if CUDART_VERSION >= 13000
      AISP_TRY(cudaGraphNodeGetDependencies(cand, nullptr, nullptr, &deps));
#else
      AISP_TRY(cudaGraphNodeGetDependencies(cand, nullptr, &deps));
#endif
      if (deps == 0) node = cand;
    }
    while (node != nullptr) {
      k.nodes.push_back(node);
      size_t next = 0;
#if CUDART_VERSION >= 13000
      AISP_TRY(cudaGraphNodeGetDependentNodes(node, nullptr, nullptr, &next));
#else
      AISP_TRY(cudaGraphNodeGetDependentNodes(node, nullptr, &next));
#endif
      if (next == 0) break;
      cudaGraphNode_t following = nullptr;
#if CUDART_VERSION >= 13000
      AISP_TRY(cudaGraphNodeGetDependentNodes(node, &following, nullptr, &next));
#else
      AISP_TRY(cudaGraphNodeGetDependentNodes(node, &following, &next));
#endif
      node = following;
    }
    if (k.nodes.size() != size_t(n)) return cudaErrorUnknown;  // not a plain chain: should not happen
    AISP_TRY(cudaGraphInstantiate(&k.exec, graph, 0));
    k.graph = graph;
    it = graphs[variant].emplace(key, std::move(k)).first;
  }
  *out = &it->second;
  return cudaSuccess;
}

cudaError_t set_step_params(cudaGraphExec_t exec, cudaGraphNode_t node, const float* in, float* out) {
  void* args[] = {const_cast<float**>(&in), &out};
  cudaKernelNodeParams p = {};
  p.func = reinterpret_cast<void*>(chain_step);
  p.gridDim = dim3(1);
  p.blockDim = dim3(32);
  p.sharedMemBytes = 0;
  p.kernelParams = args;
  return cudaGraphExecKernelNodeSetParams(exec, node, &p);
}

}  // namespace

extern "C" cudaError_t launch_chain_eager(const float* x, float* y, int n, cudaStream_t stream) {
  if (n < 1) return cudaErrorInvalidValue;
  return enqueue_chain(x, y, n, stream);
}

extern "C" cudaError_t launch_chain_graph_replay(const float* x, float* y, int n, cudaStream_t stream) {
  if (n < 1) return cudaErrorInvalidValue;
  Kept* k = nullptr;
  AISP_TRY(kept_graph(n, 0, nullptr, nullptr, &k));
  AISP_TRY(cudaMemcpyAsync(k->static_in, x, sizeof(float), cudaMemcpyDeviceToDevice, stream));
  AISP_TRY(cudaGraphLaunch(k->exec, stream));
  return cudaMemcpyAsync(y, k->static_out, sizeof(float), cudaMemcpyDeviceToDevice, stream);
}

extern "C" cudaError_t launch_chain_graph_set_params(const float* x, float* y, int n, cudaStream_t stream) {
  if (n < 1) return cudaErrorInvalidValue;
  Kept* k = nullptr;
  AISP_TRY(kept_graph(n, 1, x, y, &k));
  AISP_TRY(set_step_params(k->exec, k->nodes[0], x, y));
  for (int i = 1; i < n; ++i) AISP_TRY(set_step_params(k->exec, k->nodes[i], y, y));
  return cudaGraphLaunch(k->exec, stream);
}

extern "C" cudaError_t launch_chain_graph_exec_update(const float* x, float* y, int n, cudaStream_t stream) {
  if (n < 1) return cudaErrorInvalidValue;
  Kept* k = nullptr;
  AISP_TRY(kept_graph(n, 2, x, y, &k));
  cudaGraph_t fresh = nullptr;
  AISP_TRY(capture_chain(x, y, n, &fresh));
  cudaGraphExecUpdateResultInfo info = {};
  const cudaError_t updated = cudaGraphExecUpdate(k->exec, fresh, &info);
  AISP_TRY(cudaGraphDestroy(fresh));
  AISP_TRY(updated);  // fails only if the topology changed, which it cannot here
  return cudaGraphLaunch(k->exec, stream);
}

extern "C" cudaError_t launch_chain_graph_recapture(const float* x, float* y, int n, cudaStream_t stream) {
  if (n < 1) return cudaErrorInvalidValue;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  AISP_TRY(capture_chain(x, y, n, &graph));
  AISP_TRY(cudaGraphInstantiate(&exec, graph, 0));
  AISP_TRY(cudaGraphLaunch(exec, stream));
  AISP_TRY(cudaGraphExecDestroy(exec));  // freed once the launch completes
  return cudaGraphDestroy(graph);
}
