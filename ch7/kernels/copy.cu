// Device-to-device copy kernels, for comparing with the copy bandwidth the GPU can reach.
//   scalar:   one 4-byte word per thread: the copy one writes first. A full SM (2048 threads) then
//             keeps only 8 KB in flight.
//   vec16:    one 16-byte load and store per thread: the simplest kernel that moves full sectors
//             with the fewest instructions.
//   vec16_x4: each thread issues four independent 16-byte loads before its four stores, so each
//             thread keeps 64 bytes in flight instead of 16 (Little's law: bytes in flight =
//             bandwidth x latency; HBM3 needs tens of KB in flight per SM).
// The vector kernels need src and dst 16-byte aligned, the scalar one 4-byte aligned (the launchers
// check); the last bytes that do not fill a word or vector go byte by byte.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

constexpr int kBlock = 256;
constexpr int kUnroll = 4;

template <int kWord>  // bytes [nbytes / kWord * kWord, nbytes), at most kWord - 1 of them
__device__ __forceinline__ void copy_tail(const void* src, void* dst, int64_t nbytes) {
  const int64_t start = nbytes / kWord * kWord;
  if (blockIdx.x == 0 && start + threadIdx.x < nbytes)
    static_cast<uint8_t*>(dst)[start + threadIdx.x] = static_cast<const uint8_t*>(src)[start + threadIdx.x];
}

__global__ void copy_scalar(const uint32_t* __restrict__ src, uint32_t* __restrict__ dst, int64_t nbytes) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < nbytes / 4) dst[i] = src[i];
  copy_tail<4>(src, dst, nbytes);
}

__global__ void copy_vec16(const uint4* __restrict__ src, uint4* __restrict__ dst, int64_t nbytes) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < nbytes / 16) dst[i] = src[i];
  copy_tail<16>(src, dst, nbytes);
}

// A block covers kUnroll * kBlock vectors; vector k of a thread is kBlock apart from its k-1, so each
// of the four loads is still coalesced across the warp.
__global__ void copy_vec16_x4(const uint4* __restrict__ src, uint4* __restrict__ dst, int64_t nbytes) {
  const int64_t n = nbytes / 16;
  const int64_t base = int64_t(blockIdx.x) * kUnroll * kBlock + threadIdx.x;
  uint4 v[kUnroll];
#pragma unroll
  for (int k = 0; k < kUnroll; ++k)
    if (base + k * kBlock < n) v[k] = src[base + k * kBlock];
#pragma unroll
  for (int k = 0; k < kUnroll; ++k)
    if (base + k * kBlock < n) dst[base + k * kBlock] = v[k];
  copy_tail<16>(src, dst, nbytes);
}

static bool aligned16(const void* a, const void* b) {
  return (reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b)) % 16 == 0;
}

extern "C" cudaError_t launch_copy_scalar(const void* src, void* dst, int64_t nbytes, cudaStream_t stream) {
  if (nbytes == 0) return cudaSuccess;
  if ((reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) % 4) return cudaErrorMisalignedAddress;
  const int64_t blocks = ceil_div(nbytes / 4, kBlock) > 0 ? ceil_div(nbytes / 4, kBlock) : 1;
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  copy_scalar<<<unsigned(blocks), kBlock, 0, stream>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst),
                                                       nbytes);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_copy_vec16(const void* src, void* dst, int64_t nbytes, cudaStream_t stream) {
  if (nbytes == 0) return cudaSuccess;
  if (!aligned16(src, dst)) return cudaErrorMisalignedAddress;
  const int64_t blocks = ceil_div(nbytes / 16, kBlock) > 0 ? ceil_div(nbytes / 16, kBlock) : 1;
  copy_vec16<<<unsigned(blocks), kBlock, 0, stream>>>(static_cast<const uint4*>(src), static_cast<uint4*>(dst), nbytes);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_copy_vec16_x4(const void* src, void* dst, int64_t nbytes, cudaStream_t stream) {
  if (nbytes == 0) return cudaSuccess;
  if (!aligned16(src, dst)) return cudaErrorMisalignedAddress;
  const int64_t per_block = int64_t(kUnroll) * kBlock;
  const int64_t blocks = ceil_div(nbytes / 16, per_block) > 0 ? ceil_div(nbytes / 16, per_block) : 1;
  copy_vec16_x4<<<unsigned(blocks), kBlock, 0, stream>>>(static_cast<const uint4*>(src), static_cast<uint4*>(dst),
                                                         nbytes);
  return cudaGetLastError();
}
