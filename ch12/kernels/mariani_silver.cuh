// Mariani-Silver: escape-time dwells of the Mandelbrot set, refined only where they vary.
// A thread block takes a square region and computes the dwells on its border. If the whole border has
// one dwell, the region is filled with it (the set is connected, so nothing different hides inside);
// if the region is small or deep enough, every pixel is computed; otherwise it is split into 4 x 4
// subregions, each refined the same way. Shared by the host-driven multi-pass version
// (mariani_silver.cu) and the dynamic-parallelism one (rdc/cdp_mariani_silver.cu): both make the same
// decisions, so they produce the same image.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

constexpr int kMsBlock = 256;       // threads per region
constexpr int kMsInitSubdiv = 32;   // the image starts as 32 x 32 regions
constexpr int kMsSubdiv = 4;        // a region that varies splits into 4 x 4
constexpr int kMsMinSize = 16;      // regions whose subregions would be smaller are computed per pixel
constexpr int kMsMaxDepth = 4;      // the first regions have depth 1
constexpr int kMsDiff = -1, kMsNeutral = -2;

struct MsWindow {
  int size;               // the image is size x size pixels
  float x0, y0, x1, y1;   // the part of the complex plane it shows
  int max_dwell;
};

// Rounding spelled out (no contraction into FMAs), so a pixel's dwell is the same bits whichever
// translation unit or compilation mode (-rdc) computes it.
__device__ __forceinline__ int ms_pixel_dwell(const MsWindow& w, int px, int py) {
  const float cr = __fadd_rn(w.x0, __fmul_rn(float(px), __fdiv_rn(__fsub_rn(w.x1, w.x0), float(w.size))));
  const float ci = __fadd_rn(w.y0, __fmul_rn(float(py), __fdiv_rn(__fsub_rn(w.y1, w.y0), float(w.size))));
  float zr = cr, zi = ci;
  int d = 0;
  while (d < w.max_dwell && __fadd_rn(__fmul_rn(zr, zr), __fmul_rn(zi, zi)) < 4.0f) {
    const float next_r = __fadd_rn(__fsub_rn(__fmul_rn(zr, zr), __fmul_rn(zi, zi)), cr);
    zi = __fadd_rn(__fmul_rn(2.0f, __fmul_rn(zr, zi)), ci);
    zr = next_r;
    ++d;
  }
  return d;
}

__device__ __forceinline__ int ms_same(int a, int b) {
  return a == b ? a : a == kMsNeutral ? b : b == kMsNeutral ? a : kMsDiff;
}

// The dwell shared by the whole border of the region, or kMsDiff. Every thread of the block calls it.
__device__ inline int ms_border_dwell(const MsWindow& w, int x0, int y0, int s) {
  __shared__ int common[kMsBlock];
  int acc = kMsNeutral;
  for (int k = threadIdx.x; k < 4 * (s - 1); k += blockDim.x) {
    const int side = k / (s - 1), t = k % (s - 1);
    const int px = side == 0 ? x0 + t : side == 1 ? x0 + s - 1 : side == 2 ? x0 + s - 1 - t : x0;
    const int py = side == 0 ? y0 : side == 1 ? y0 + t : side == 2 ? y0 + s - 1 : y0 + s - 1 - t;
    acc = ms_same(acc, ms_pixel_dwell(w, px, py));
  }
  common[threadIdx.x] = acc;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) common[threadIdx.x] = ms_same(common[threadIdx.x], common[threadIdx.x + half]);
    __syncthreads();
  }
  const int result = common[0];
  __syncthreads();  // common[] is reused by the next call
  return result;
}

// Fill or compute the region; true when it must be subdivided instead (the same answer in every thread).
__device__ inline bool ms_region(int* dwells, const MsWindow& w, int x0, int y0, int s, int depth) {
  const int common = ms_border_dwell(w, x0, y0, s);
  const bool leaf = depth + 1 >= kMsMaxDepth || s / kMsSubdiv < kMsMinSize;
  if (common == kMsDiff && !leaf) return true;
  for (int k = threadIdx.x; k < s * s; k += blockDim.x) {
    const int px = x0 + k % s, py = y0 + k / s;
    dwells[int64_t(py) * w.size + px] = common != kMsDiff ? common : ms_pixel_dwell(w, px, py);
  }
  return false;
}

// How many regions a level's work list may hold at most, for an image of `size` pixels.
__host__ __device__ inline int64_t ms_capacity(int size) {
  int64_t count = int64_t(kMsInitSubdiv) * kMsInitSubdiv, most = count;
  int s = size / kMsInitSubdiv, depth = 1;
  while (depth + 1 < kMsMaxDepth && s / kMsSubdiv >= kMsMinSize) {
    count *= kMsSubdiv * kMsSubdiv;
    most = count > most ? count : most;
    s /= kMsSubdiv;
    ++depth;
  }
  return most;
}
