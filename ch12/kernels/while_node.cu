// Iterate until converged: Jacobi sweeps on a tridiagonal system until the largest change is <= tol.
//   host loop:  each sweep is two kernels, then the "keep going?" flag is copied to the host and the
//               host waits for it before deciding to launch the next sweep: a full round trip per sweep.
//   while node: one CUDA graph holds a conditional WHILE node (CUDA 12.4+) whose body is the same two
//               kernels; the second sets the loop's condition with cudaGraphSetConditional, so the loop
//               runs on the device with no host in it. One graph launch for the whole solve.
// Both run the same kernels in the same order: the same iterations, the same bits.
// The graph is built once per (device, n, tol, max_iters) over static buffers; a call copies this
// call's b, diag and x0 in and the solution and count out.
#include <cstdint>
#include <cuda_runtime.h>
#include <map>
#include <tuple>

#include "aisp/launch.cuh"
#include "launchers.h"

#define AISP_TRY(expr)                              \
  do {                                              \
    cudaError_t aisp_err_ = (expr);                 \
    if (aisp_err_ != cudaSuccess) return aisp_err_; \
  } while (0)

#if CUDART_VERSION >= 12040
#define AISP_HAS_CONDITIONAL_NODES 1
using CondHandle = cudaGraphConditionalHandle;
#else
#define AISP_HAS_CONDITIONAL_NODES 0
using CondHandle = unsigned long long;
#endif

namespace {

constexpr int kBlock = 256;
// state[] layout: the largest |change| this sweep (float bits; atomicMax on the bits orders
// non-negative floats correctly), sweeps done, keep going (0/1).
constexpr int kMaxChange = 0, kSweeps = 1, kKeepGoing = 2, kStateInts = 4;

__global__ void jacobi_sweep(const float* __restrict__ x, float* __restrict__ x_new, const float* __restrict__ b,
                             const float* __restrict__ diag, int64_t n, int* state) {
  __shared__ float block_max[kBlock / 32];
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  float change = 0.0f;
  if (i < n) {
    const float left = i > 0 ? x[i - 1] : 0.0f, right = i + 1 < n ? x[i + 1] : 0.0f;
    const float v = (b[i] + left + right) / diag[i];
    x_new[i] = v;
    change = fabsf(v - x[i]);
  }
  for (int off = 16; off > 0; off >>= 1) change = fmaxf(change, __shfl_xor_sync(0xffffffffu, change, off));
  if (threadIdx.x % 32 == 0) block_max[threadIdx.x / 32] = change;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = 0.0f;
    for (int w = 0; w < kBlock / 32; ++w) m = fmaxf(m, block_max[w]);
    atomicMax(reinterpret_cast<unsigned*>(state + kMaxChange), __float_as_uint(m));
  }
}

// x = x_new; one thread decides whether to sweep again, resets the change, and tells the graph.
__global__ void finish_sweep(float* __restrict__ x, const float* __restrict__ x_new, int64_t n, int* state, float tol,
                             int max_iters, CondHandle handle, int set_condition) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = x_new[i];
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    const float change = __uint_as_float(unsigned(state[kMaxChange]));
    const int sweeps = state[kSweeps] + 1;
    const int again = change > tol && sweeps < max_iters;
    state[kSweeps] = sweeps;
    state[kKeepGoing] = again;
    state[kMaxChange] = 0;
#if AISP_HAS_CONDITIONAL_NODES
    if (set_condition) cudaGraphSetConditional(handle, again);
#endif
  }
}

int sweep_blocks(int64_t n) { return int(ceil_div(n, kBlock)); }
int finish_blocks(int64_t n) { return blocks_to_fill_gpu(finish_sweep, kBlock, n); }

// Pinned host memory for the host loop's flag, one int per device, made once.
cudaError_t host_flag(int** out) {
  static std::map<int, int*> flags;
  int device = 0;
  AISP_TRY(cudaGetDevice(&device));
  auto it = flags.find(device);
  if (it == flags.end()) {
    int* p = nullptr;
    AISP_TRY(cudaMallocHost(&p, sizeof(int)));
    it = flags.emplace(device, p).first;
  }
  *out = it->second;
  return cudaSuccess;
}

#if AISP_HAS_CONDITIONAL_NODES
struct WhileGraph {
  float *b = nullptr, *diag = nullptr, *x = nullptr, *x_new = nullptr;
  int* state = nullptr;
  cudaGraphExec_t exec = nullptr;
};

cudaError_t add_kernel(cudaGraph_t g, cudaGraphNode_t* node, const cudaGraphNode_t* deps, size_t ndeps, void* func,
                       int blocks, void** args) {
  cudaKernelNodeParams p = {};
  p.func = func;
  p.gridDim = dim3(blocks);
  p.blockDim = dim3(kBlock);
  p.kernelParams = args;
  return cudaGraphAddKernelNode(node, g, deps, ndeps, &p);
}

cudaError_t build_while_graph(WhileGraph& w, int64_t n, float tol, int max_iters) {
  AISP_TRY(cudaMalloc(&w.b, n * sizeof(float)));
  AISP_TRY(cudaMalloc(&w.diag, n * sizeof(float)));
  AISP_TRY(cudaMalloc(&w.x, n * sizeof(float)));
  AISP_TRY(cudaMalloc(&w.x_new, n * sizeof(float)));
  AISP_TRY(cudaMalloc(&w.state, kStateInts * sizeof(int)));
  cudaGraph_t graph = nullptr;
  AISP_TRY(cudaGraphCreate(&graph, 0));
  // Node 1: zero the state (a memset node: its address is static).
  cudaMemsetParams ms = {};
  ms.dst = w.state;
  ms.value = 0;
  ms.elementSize = sizeof(int);
  ms.width = kStateInts;
  ms.height = 1;
  cudaGraphNode_t reset = nullptr;
  AISP_TRY(cudaGraphAddMemsetNode(&reset, graph, nullptr, 0, &ms));
  // Node 2: while (condition) { body }; the condition starts at 1 on every launch (do-while).
  CondHandle handle = 0;
  AISP_TRY(cudaGraphConditionalHandleCreate(&handle, graph, 1, cudaGraphCondAssignDefault));
  cudaGraphNodeParams cond = {};
  cond.type = cudaGraphNodeTypeConditional;
  cond.conditional.handle = handle;
  cond.conditional.type = cudaGraphCondTypeWhile;
  cond.conditional.size = 1;
  cudaGraphNode_t loop = nullptr;
#if CUDART_VERSION >= 13000
  AISP_TRY(cudaGraphAddNode(&loop, graph, &reset, nullptr, 1, &cond));
#else
  AISP_TRY(cudaGraphAddNode(&loop, graph, &reset, 1, &cond));
#endif
  cudaGraph_t body = cond.conditional.phGraph_out[0];  // the runtime made the body graph; we fill it
  int set = 1;
  void* sweep_args[] = {&w.x, &w.x_new, &w.b, &w.diag, &n, &w.state};
  void* finish_args[] = {&w.x, &w.x_new, &n, &w.state, &tol, &max_iters, &handle, &set};
  cudaGraphNode_t sweep = nullptr, finish = nullptr;
  AISP_TRY(add_kernel(body, &sweep, nullptr, 0, reinterpret_cast<void*>(jacobi_sweep), sweep_blocks(n), sweep_args));
  AISP_TRY(add_kernel(body, &finish, &sweep, 1, reinterpret_cast<void*>(finish_sweep), finish_blocks(n), finish_args));
  AISP_TRY(cudaGraphInstantiate(&w.exec, graph, 0));
  return cudaGraphDestroy(graph);
}

cudaError_t while_graph(int64_t n, float tol, int max_iters, WhileGraph** out) {
  static std::map<std::tuple<int, int64_t, float, int>, WhileGraph> graphs;
  int device = 0;
  AISP_TRY(cudaGetDevice(&device));
  auto key = std::make_tuple(device, n, tol, max_iters);
  auto it = graphs.find(key);
  if (it == graphs.end()) {
    WhileGraph w;
    AISP_TRY(build_while_graph(w, n, tol, max_iters));
    it = graphs.emplace(key, w).first;
  }
  *out = &it->second;
  return cudaSuccess;
}
#endif

}  // namespace

extern "C" int conditional_nodes_supported() { return AISP_HAS_CONDITIONAL_NODES; }

extern "C" cudaError_t launch_jacobi_host_loop(const float* b, const float* diag, const float* x0, float* x, int* iters,
                                               float* x_new, int* state, int64_t n, float tol, int max_iters,
                                               cudaStream_t stream) {
  if (n <= 0 || max_iters < 1) return cudaErrorInvalidValue;
  int* flag = nullptr;
  AISP_TRY(host_flag(&flag));
  AISP_TRY(cudaMemcpyAsync(x, x0, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  const int sweeps = sweep_blocks(n), finishes = finish_blocks(n);
  while (true) {
    jacobi_sweep<<<sweeps, kBlock, 0, stream>>>(x, x_new, b, diag, n, state);
    finish_sweep<<<finishes, kBlock, 0, stream>>>(x, x_new, n, state, tol, max_iters, CondHandle(0), 0);
    AISP_TRY(cudaGetLastError());
    AISP_TRY(cudaMemcpyAsync(flag, state + kKeepGoing, sizeof(int), cudaMemcpyDeviceToHost, stream));
    AISP_TRY(cudaStreamSynchronize(stream));  // the round trip the while node removes
    if (!*flag) break;
  }
  return cudaMemcpyAsync(iters, state + kSweeps, sizeof(int), cudaMemcpyDeviceToDevice, stream);
}

extern "C" cudaError_t launch_jacobi_while_graph(const float* b, const float* diag, const float* x0, float* x,
                                                 int* iters, int64_t n, float tol, int max_iters, cudaStream_t stream) {
#if AISP_HAS_CONDITIONAL_NODES
  if (n <= 0 || max_iters < 1) return cudaErrorInvalidValue;
  WhileGraph* w = nullptr;
  AISP_TRY(while_graph(n, tol, max_iters, &w));
  const size_t bytes = n * sizeof(float);
  AISP_TRY(cudaMemcpyAsync(w->b, b, bytes, cudaMemcpyDeviceToDevice, stream));
  AISP_TRY(cudaMemcpyAsync(w->diag, diag, bytes, cudaMemcpyDeviceToDevice, stream));
  AISP_TRY(cudaMemcpyAsync(w->x, x0, bytes, cudaMemcpyDeviceToDevice, stream));
  AISP_TRY(cudaGraphLaunch(w->exec, stream));
  AISP_TRY(cudaMemcpyAsync(x, w->x, bytes, cudaMemcpyDeviceToDevice, stream));
  return cudaMemcpyAsync(iters, w->state + kSweeps, sizeof(int), cudaMemcpyDeviceToDevice, stream);
#else
  (void)b, (void)diag, (void)x0, (void)x, (void)iters, (void)n, (void)tol, (void)max_iters, (void)stream;
  return cudaErrorNotSupported;
#endif
}
