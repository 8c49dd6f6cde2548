// Vector addition two ways: one GPU thread doing all the work (a teaching kernel) and one thread per
// element. Standalone check: nvcc -O3 -DAISP_STANDALONE -o vector_add ch6/kernels/vector_add.cu && ./vector_add
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

// One thread walks the whole array: the GPU used as a single slow, in-order core. Teaching only.
__global__ void add_one_thread(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// One thread per element: the global index is the block's offset plus the thread's offset in it.
// The last block may run past n, hence the bound check.
__global__ void add_per_element(const float* __restrict__ a, const float* __restrict__ b,
                                float* __restrict__ out, int64_t n) {
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

extern "C" cudaError_t launch_add_one_thread(const float* a, const float* b, float* out, int64_t n,
                                             cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  add_one_thread<<<1, 1, 0, stream>>>(a, b, out, n);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_add_per_element(const float* a, const float* b, float* out, int64_t n,
                                              cudaStream_t stream) {
  constexpr int kBlock = 256;
  if (n == 0) return cudaSuccess;
  if (ceil_div(n, kBlock) > INT32_MAX) return cudaErrorInvalidValue;  // grid.x limit: 2^31 - 1 blocks
  add_per_element<<<unsigned(ceil_div(n, kBlock)), kBlock, 0, stream>>>(a, b, out, n);
  return cudaGetLastError();
}

#ifdef AISP_STANDALONE
#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const int64_t n = 1 << 20;
  std::vector<float> ha(n), hb(n), hout(n);
  for (int64_t i = 0; i < n; ++i) { ha[i] = std::sin(float(i)); hb[i] = std::cos(float(i)); }
  float *a, *b, *out;
  cudaMalloc(&a, n * sizeof(float)); cudaMalloc(&b, n * sizeof(float)); cudaMalloc(&out, n * sizeof(float));
  cudaMemcpy(a, ha.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(b, hb.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  cudaEvent_t start, stop;
  cudaEventCreate(&start); cudaEventCreate(&stop);
  int bad_total = 0;
  for (int one_thread = 1; one_thread >= 0; --one_thread) {
    cudaMemset(out, 0xff, n * sizeof(float));  // NaN: an element never written fails the check
    cudaEventRecord(start);
    cudaError_t err = one_thread ? launch_add_one_thread(a, b, out, n, 0) : launch_add_per_element(a, b, out, n, 0);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    if (err == cudaSuccess) err = cudaGetLastError();
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    cudaMemcpy(hout.data(), out, n * sizeof(float), cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) bad += !(hout[i] == ha[i] + hb[i]);
    std::printf("%-16s %9.3f ms  %s  (%s)\n", one_thread ? "one thread" : "one per element", ms,
                bad ? "WRONG" : "ok", cudaGetErrorString(err));
    bad_total += bad + (err != cudaSuccess);
  }
  cudaFree(a); cudaFree(b); cudaFree(out);
  return bad_total ? 1 : 0;
}
#endif
