// A chain of small dependent layers, h_{l+1} = tanh(W_l h_l + b_l) for a small batch (fp32; W_l is
// [width, width] in the nn.Linear layout), run four ways with the same per-row arithmetic:
// 1. one launch of a per-layer kernel per layer (the kernel boundary is the barrier between layers);
// 2. the same launches built once into a CUDA graph, whose nodes get this call's pointers
//    (cudaGraphExecKernelNodeSetParams) before the graph is launched;
// 3. one persistent cooperative launch that walks all layers, cooperative_groups grid.sync() between them;
// 4. one persistent cooperative launch with a split barrier: a block arrives on layer l's counter as soon as
//    its rows are written (release), prefetches its weight rows of layer l+1 into L2 (weights do not depend
//    on the previous layer), and only then waits for every block's arrival (acquire).
// Every output row is one warp's dot products against all of h (for every batch element), so the same
// row code gives bitwise the same answer in all four.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "aisp/launch.cuh"
#include "launchers.h"

namespace cg = cooperative_groups;

namespace {

constexpr int MAX_BATCH = 8;
constexpr int CHAIN_THREADS = 256;
constexpr int CHAIN_WARPS = CHAIN_THREADS / 32;
constexpr int UNROLL = 8;  // float4 weight loads in flight per lane: a 1024-float row in one round trip
constexpr long long SPIN_LIMIT_CYCLES = 4000000000LL;  // ~2 s at 2 GHz: a missing arrival traps, never hangs

// out[b][n] = tanh(w[n, :] . h[b, :] + bias[n]) for b < batch, by one warp. `h` may be written by other
// blocks of the same launch (the persistent kernels), so it is read with plain loads, never the read-only path.
__device__ __forceinline__ void layer_row(const float* __restrict__ w, const float* __restrict__ bias, const float* h,
                                          float* out, int batch, int width, int n, int lane) {
  float acc[MAX_BATCH];
#pragma unroll
  for (int b = 0; b < MAX_BATCH; ++b) acc[b] = 0.0f;
  const float* row = w + int64_t(n) * width;
  if ((width & 3) == 0) {  // rows 16-byte aligned: float4 loads, 128 floats per warp per step
    // UNROLL steps of weights first (one DRAM round trip for all of them), then h (L1/L2-resident) against each
    for (int k0 = lane * 4; k0 < width; k0 += 128 * UNROLL) {
      float4 wv[UNROLL];
#pragma unroll
      for (int u = 0; u < UNROLL; ++u)
        wv[u] = (k0 + u * 128 < width) ? *reinterpret_cast<const float4*>(row + k0 + u * 128)
                                        : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
      for (int b = 0; b < MAX_BATCH; ++b) {
        if (b >= batch) break;
        const float* hb = h + int64_t(b) * width + k0;
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          if (k0 + u * 128 < width) {
            const float4 hv = *reinterpret_cast<const float4*>(hb + u * 128);
            acc[b] = fmaf(wv[u].x, hv.x, fmaf(wv[u].y, hv.y, fmaf(wv[u].z, hv.z, fmaf(wv[u].w, hv.w, acc[b]))));
          }
        }
      }
    }
  } else {  // any width: one float per lane per step
    for (int k = lane; k < width; k += 32) {
      const float wk = row[k];
#pragma unroll
      for (int b = 0; b < MAX_BATCH; ++b)
        if (b < batch) acc[b] = fmaf(wk, h[int64_t(b) * width + k], acc[b]);
    }
  }
#pragma unroll
  for (int b = 0; b < MAX_BATCH; ++b) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) acc[b] += __shfl_xor_sync(0xffffffffu, acc[b], offset);
  }
  if (lane == 0) {
    const float bn = bias[n];
#pragma unroll
    for (int b = 0; b < MAX_BATCH; ++b)
      if (b < batch) out[int64_t(b) * width + n] = tanhf(acc[b] + bn);
  }
}

// Every row of one layer, warps striding over the rows.
__device__ __forceinline__ void layer_rows(const float* __restrict__ w, const float* __restrict__ bias,
                                           const float* h, float* out, int batch, int width) {
  const int lane = threadIdx.x & 31;
  const int warps = gridDim.x * CHAIN_WARPS;
  for (int n = blockIdx.x * CHAIN_WARPS + threadIdx.x / 32; n < width; n += warps)
    layer_row(w, bias, h, out, batch, width, n, lane);
}

// Layer l writes `out` when layers-1-l is even, else `scratch`: the last layer lands in out, and no layer
// reads the buffer it writes.
__host__ __device__ __forceinline__ float* layer_dst(int l, int layers, float* out, float* scratch) {
  return ((layers - 1 - l) % 2 == 0) ? out : scratch;
}

__global__ void __launch_bounds__(CHAIN_THREADS)
    tanh_layer(const float* __restrict__ w, const float* __restrict__ bias, const float* __restrict__ h,
               float* __restrict__ out, int batch, int width) {
  layer_rows(w, bias, h, out, batch, width);
}

__global__ void __launch_bounds__(CHAIN_THREADS)
    tanh_chain_grid_sync(const float* __restrict__ w, const float* __restrict__ bias, const float* x, float* out,
                         float* scratch, int batch, int width, int layers) {
  cg::grid_group grid = cg::this_grid();
  const float* src = x;
  for (int l = 0; l < layers; ++l) {
    float* dst = layer_dst(l, layers, out, scratch);
    layer_rows(w + int64_t(l) * width * width, bias + int64_t(l) * width, src, dst, batch, width);
    if (l + 1 < layers) grid.sync();  // layer l is complete everywhere before any block reads it
    src = dst;
  }
}

__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ void add_release(unsigned* p, unsigned v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// This block's rows of the layer are written: make them visible at GPU scope, then count the block in.
__device__ __forceinline__ void arrive(unsigned* counter) {
  __threadfence();  // each writing thread's stores, before the barrier
  __syncthreads();
  if (threadIdx.x == 0) add_release(counter, 1);
}

// Wait until `target` blocks have arrived; thread 0 acquires, the block barrier passes that on.
__device__ __forceinline__ void wait_for(const unsigned* counter, unsigned target) {
  if (threadIdx.x == 0) {
    const long long start = clock64();
    while (load_acquire(counter) < target)
      if (clock64() - start > SPIN_LIMIT_CYCLES) __trap();  // an arrival that never comes: fail loudly
  }
  __syncthreads();
}

// Ask L2 for this block's weight rows of one layer (one 128-byte line per lane per step); nothing waits on it.
__device__ __forceinline__ void prefetch_rows_l2(const float* w, int width) {
  const int lane = threadIdx.x & 31;
  const int warps = gridDim.x * CHAIN_WARPS;
  for (int n = blockIdx.x * CHAIN_WARPS + threadIdx.x / 32; n < width; n += warps) {
    const float* row = w + int64_t(n) * width;
    for (int k = lane * 32; k < width; k += 32 * 32) asm volatile("prefetch.global.L2 [%0];" ::"l"(row + k));
  }
}

__global__ void __launch_bounds__(CHAIN_THREADS)
    tanh_chain_split_barrier(const float* __restrict__ w, const float* __restrict__ bias, const float* x, float* out,
                             float* scratch, unsigned* arrived, int batch, int width, int layers) {
  const float* src = x;
  for (int l = 0; l < layers; ++l) {
    float* dst = layer_dst(l, layers, out, scratch);
    const float* wl = w + int64_t(l) * width * width;
    if (l > 0) {
      prefetch_rows_l2(wl, width);  // needs nothing from layer l-1: overlaps the wait below
      wait_for(&arrived[l - 1], gridDim.x);  // every row of layer l-1 (this layer's input) is written
    }
    layer_rows(wl, bias + int64_t(l) * width, src, dst, batch, width);
    if (l + 1 < layers) arrive(&arrived[l]);
    src = dst;
  }
}

cudaError_t check_chain(int batch, int width, int layers) {
  return (batch < 1 || batch > MAX_BATCH || width < 1 || layers < 1) ? cudaErrorInvalidValue : cudaSuccess;
}

int per_layer_grid(int width) { return int(ceil_div(width, CHAIN_WARPS)); }  // one row per warp

// Blocks for a persistent launch: one row per warp at most, never more than fit on the GPU at once (a grid
// barrier, or a block spinning on a counter, deadlocks when some blocks wait for others that cannot start).
cudaError_t persistent_grid(const void* kernel, int width, int* grid) {
  int device = 0, sms = 1, per_sm = 0, cooperative = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device);
  if (!cooperative) return cudaErrorNotSupported;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, CHAIN_THREADS, 0);
  if (err != cudaSuccess) return err;
  if (per_sm < 1) return cudaErrorLaunchOutOfResources;
  const int64_t fit = int64_t(sms) * per_sm;
  const int64_t need = per_layer_grid(width);
  *grid = int(need < fit ? need : fit);
  return cudaSuccess;
}

// The per-layer launches as a graph, built once per shape (node l depends on node l-1).
struct LayerGraph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  std::vector<cudaGraphNode_t> nodes;
};

cudaKernelNodeParams layer_params(void** args, int width) {
  cudaKernelNodeParams p = {};
  p.func = reinterpret_cast<void*>(tanh_layer);
  p.gridDim = dim3(per_layer_grid(width));
  p.blockDim = dim3(CHAIN_THREADS);
  p.sharedMemBytes = 0;
  p.kernelParams = args;
  return p;
}

cudaError_t layer_graph(int batch, int width, int layers, LayerGraph** out) {
  static std::map<std::tuple<int, int, int, int>, LayerGraph> graphs;  // (device, batch, width, layers)
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  const auto key = std::make_tuple(device, batch, width, layers);
  auto it = graphs.find(key);
  if (it == graphs.end()) {
    cudaGraph_t graph = nullptr;
    if ((err = cudaGraphCreate(&graph, 0)) != cudaSuccess) return err;
    LayerGraph g;
    const float* none = nullptr;  // pointers are set per call
    float* none_out = nullptr;
    void* args[] = {&none, &none, &none, &none_out, &batch, &width};
    const cudaKernelNodeParams p = layer_params(args, width);
    for (int l = 0; l < layers && err == cudaSuccess; ++l) {
      cudaGraphNode_t node = nullptr;
      err = cudaGraphAddKernelNode(&node, graph, l ? &g.nodes.back() : nullptr, l ? 1 : 0, &p);
      g.nodes.push_back(node);
    }
    if (err == cudaSuccess) err = cudaGraphInstantiate(&g.exec, graph, 0);
    if (err != cudaSuccess) {
      cudaGraphDestroy(graph);
      return err;
    }
    g.graph = graph;  // kept: its nodes name the executable graph's nodes in cudaGraphExecKernelNodeSetParams
    it = graphs.emplace(key, std::move(g)).first;
  }
  *out = &it->second;
  return cudaSuccess;
}

}  // namespace

extern "C" cudaError_t launch_tanh_chain_per_layer(const float* w, const float* bias, const float* x, float* out,
                                                   float* scratch, unsigned* /*arrived*/, int batch, int width,
                                                   int layers, cudaStream_t stream) {
  cudaError_t err = check_chain(batch, width, layers);
  if (err != cudaSuccess) return err;
  const float* src = x;
  for (int l = 0; l < layers; ++l) {
    float* dst = layer_dst(l, layers, out, scratch);
    tanh_layer<<<per_layer_grid(width), CHAIN_THREADS, 0, stream>>>(w + int64_t(l) * width * width,
                                                                    bias + int64_t(l) * width, src, dst, batch, width);
    src = dst;
  }
  return cudaGetLastError();
}

extern "C" cudaError_t launch_tanh_chain_graph(const float* w, const float* bias, const float* x, float* out,
                                               float* scratch, unsigned* /*arrived*/, int batch, int width,
                                               int layers, cudaStream_t stream) {
  cudaError_t err = check_chain(batch, width, layers);
  if (err != cudaSuccess) return err;
  LayerGraph* g = nullptr;
  if ((err = layer_graph(batch, width, layers, &g)) != cudaSuccess) return err;
  const float* src = x;
  for (int l = 0; l < layers; ++l) {  // this call's pointers into each node (the next launch sees them)
    const float* wl = w + int64_t(l) * width * width;
    const float* bl = bias + int64_t(l) * width;
    float* dst = layer_dst(l, layers, out, scratch);
    void* args[] = {&wl, &bl, &src, &dst, &batch, &width};
    const cudaKernelNodeParams p = layer_params(args, width);
    if ((err = cudaGraphExecKernelNodeSetParams(g->exec, g->nodes[l], &p)) != cudaSuccess) return err;
    src = dst;
  }
  return cudaGraphLaunch(g->exec, stream);
}

extern "C" cudaError_t launch_tanh_chain_grid_sync(const float* w, const float* bias, const float* x, float* out,
                                                   float* scratch, unsigned* /*arrived*/, int batch, int width,
                                                   int layers, cudaStream_t stream) {
  cudaError_t err = check_chain(batch, width, layers);
  if (err != cudaSuccess) return err;
  int grid = 0;
  if ((err = persistent_grid(reinterpret_cast<const void*>(tanh_chain_grid_sync), width, &grid)) != cudaSuccess)
    return err;
  void* args[] = {(void*)&w, (void*)&bias, (void*)&x, (void*)&out, (void*)&scratch, &batch, &width, &layers};
  return cudaLaunchCooperativeKernel(reinterpret_cast<void*>(tanh_chain_grid_sync), dim3(grid), dim3(CHAIN_THREADS),
                                     args, 0, stream);
}

extern "C" cudaError_t launch_tanh_chain_split_barrier(const float* w, const float* bias, const float* x, float* out,
                                                       float* scratch, unsigned* arrived, int batch, int width,
                                                       int layers, cudaStream_t stream) {
  cudaError_t err = check_chain(batch, width, layers);
  if (err != cudaSuccess) return err;
  int grid = 0;
  if ((err = persistent_grid(reinterpret_cast<const void*>(tanh_chain_split_barrier), width, &grid)) != cudaSuccess)
    return err;
  // one arrival counter per layer, zero before the launch (a cooperative launch: every block resident at once)
  if ((err = cudaMemsetAsync(arrived, 0, sizeof(unsigned) * layers, stream)) != cudaSuccess) return err;
  void* args[] = {(void*)&w,       (void*)&bias, (void*)&x,     (void*)&out,   (void*)&scratch,
                  (void*)&arrived, &batch,       &width,        &layers};
  return cudaLaunchCooperativeKernel(reinterpret_cast<void*>(tanh_chain_split_barrier), dim3(grid),
                                     dim3(CHAIN_THREADS), args, 0, stream);
}
