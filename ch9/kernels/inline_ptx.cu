// Inline PTX for what C++ does not say directly: a cache hint on a read-once stream.
// out = alpha * x + y over n floats, 16-byte loads either way. The plain kernel's loads are ordinary C++
// (const __restrict__, which nvcc may already turn into the read-only path, LDG.E.128.CONSTANT); the PTX
// kernel loads with `ld.global.nc.L1::no_allocate.v4.f32`: read-only, and not kept in L1, since nothing
// here is read twice (SASS shows it as an LDG with an .NA qualifier; see ch9/show_sass.sh). The stores are
// the same plain C++ in both, so the loads are the one difference. Both are memory-bound: 12 bytes per element.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

namespace {

constexpr int kBlock = 256, kBatch = 4;  // float4s of each stream in flight per thread

__device__ __forceinline__ float4 load_plain(const float4* p) { return *p; }

__device__ __forceinline__ float4 load_stream(const float4* p) {
  float4 v;
  // not volatile: the compiler may still schedule these like any load (x and y are never written here)
  asm("ld.global.nc.L1::no_allocate.v4.f32 {%0, %1, %2, %3}, [%4];"
      : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
      : "l"(p));
  return v;
}

template <bool kStream>
__global__ void __launch_bounds__(kBlock) axpy(const float* __restrict__ x, const float* __restrict__ y,
                                               float* __restrict__ out, float alpha, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const float4* xv = reinterpret_cast<const float4*>(x);
  const float4* yv = reinterpret_cast<const float4*>(y);
  float4* ov = reinterpret_cast<float4*>(out);
  // Each thread issues kBatch loads of each stream before any store, in both kernels alike: left to itself,
  // nvcc batches the plain loads across iterations but not the asm ones (it will not move them past a
  // store), which would be a second difference (bytes in flight) beside the cache hint.
  const int64_t n4 = n / 4;
  for (int64_t base = first; base < n4; base += stride * kBatch) {
    float4 a[kBatch], b[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int64_t v = base + u * stride;
      if (v < n4) {
        a[u] = kStream ? load_stream(xv + v) : load_plain(xv + v);
        b[u] = kStream ? load_stream(yv + v) : load_plain(yv + v);
      }
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int64_t v = base + u * stride;
      if (v < n4)
        ov[v] = make_float4(fmaf(alpha, a[u].x, b[u].x), fmaf(alpha, a[u].y, b[u].y), fmaf(alpha, a[u].z, b[u].z),
                            fmaf(alpha, a[u].w, b[u].w));
    }
  }
  const int64_t tail = n % 4;  // the last n % 4 elements, one thread each
  if (first < tail) out[n / 4 * 4 + first] = fmaf(alpha, x[n / 4 * 4 + first], y[n / 4 * 4 + first]);
}

template <bool kStream>
cudaError_t launch(const float* x, const float* y, float* out, float alpha, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(y) | reinterpret_cast<uintptr_t>(out)) % 16)
    return cudaErrorMisalignedAddress;
  const int grid = blocks_to_fill_gpu(axpy<kStream>, kBlock, n / 4 > 4 ? ceil_div(n / 4, kBatch) : 4);
  axpy<kStream><<<grid, kBlock, 0, stream>>>(x, y, out, alpha, n);
  return cudaGetLastError();
}

}  // namespace

extern "C" cudaError_t launch_axpy_plain(const float* x, const float* y, float* out, float alpha, int64_t n,
                                         cudaStream_t stream) {
  return launch<false>(x, y, out, alpha, n, stream);
}

extern "C" cudaError_t launch_axpy_ptx_stream(const float* x, const float* y, float* out, float alpha, int64_t n,
                                              cudaStream_t stream) {
  return launch<true>(x, y, out, alpha, n, stream);
}
