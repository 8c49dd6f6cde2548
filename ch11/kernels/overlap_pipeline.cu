// A chunked host -> device -> compute -> host pipeline, on one stream or several.
//   On one stream, chunk i's copy in, kernel and copy out run back to back, and nothing overlaps.
//   On n streams, chunk i goes on stream i % n: while chunk i computes, chunk i+1 is copied in by the
//   host-to-device copy engine and chunk i-1 is copied out by the device-to-host one. Host memory must
//   be pinned, or cudaMemcpyAsync falls back to a staged, synchronous copy and nothing overlaps.
// The per-element work is `iters` dependent FMAs, so compute time can be set equal to copy time.
#include <cstdint>
#include <cuda_runtime.h>

#include "aisp/launch.cuh"
#include "launchers.h"

namespace {

constexpr int kBlock = 256;
constexpr int kMaxStreams = 8;
constexpr int kMaxDevices = 64;

__global__ void fma_chain(const float* __restrict__ in, float* __restrict__ out, int64_t n, int iters) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float v = in[i];
  for (int k = 0; k < iters; ++k) v = fmaf(v, 0.999f, 0.001f);  // stays finite: contracts towards 1
  out[i] = v;
}

// Streams and events made once per device: creating them is a driver call, and they hold no data.
struct Lanes {
  cudaStream_t streams[kMaxStreams] = {};
  cudaEvent_t ready = nullptr;               // the caller's stream reached the pipeline
  cudaEvent_t done[kMaxStreams] = {};        // each lane finished its chunks
  bool made = false;
};

cudaError_t lanes_for_device(Lanes** out) {
  static Lanes lanes[kMaxDevices];
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  if (device >= kMaxDevices) return cudaErrorInvalidDevice;
  Lanes& l = lanes[device];
  if (!l.made) {
    for (int s = 0; s < kMaxStreams; ++s) {
      if ((err = cudaStreamCreateWithFlags(&l.streams[s], cudaStreamNonBlocking)) != cudaSuccess) return err;
      if ((err = cudaEventCreateWithFlags(&l.done[s], cudaEventDisableTiming)) != cudaSuccess) return err;
    }
    if ((err = cudaEventCreateWithFlags(&l.ready, cudaEventDisableTiming)) != cudaSuccess) return err;
    l.made = true;
  }
  *out = &l;
  return cudaSuccess;
}

}  // namespace

extern "C" cudaError_t launch_overlap_pipeline(const float* host_in, float* host_out, float* dev_in, float* dev_out,
                                               int64_t n, int chunks, int n_streams, int iters, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (chunks < 1 || n_streams < 1 || n_streams > kMaxStreams || iters < 0) return cudaErrorInvalidValue;
  Lanes* lanes = nullptr;
  cudaError_t err = lanes_for_device(&lanes);
  if (err != cudaSuccess) return err;
  cudaStream_t* lane = n_streams == 1 ? &stream : lanes->streams;  // one stream: the caller's own
  if (n_streams > 1) {  // every lane starts after whatever the caller queued before (e.g. making dev buffers)
    if ((err = cudaEventRecord(lanes->ready, stream)) != cudaSuccess) return err;
    for (int s = 0; s < n_streams; ++s)
      if ((err = cudaStreamWaitEvent(lane[s], lanes->ready, 0)) != cudaSuccess) return err;
  }
  const int64_t per_chunk = ceil_div(n, chunks);
  for (int c = 0; c < chunks; ++c) {
    const int64_t begin = c * per_chunk;
    const int64_t count = begin >= n ? 0 : (n - begin < per_chunk ? n - begin : per_chunk);
    if (count == 0) break;
    cudaStream_t s = lane[c % n_streams];
    const size_t bytes = size_t(count) * sizeof(float);
    if ((err = cudaMemcpyAsync(dev_in + begin, host_in + begin, bytes, cudaMemcpyHostToDevice, s)) != cudaSuccess)
      return err;
    fma_chain<<<unsigned(ceil_div(count, kBlock)), kBlock, 0, s>>>(dev_in + begin, dev_out + begin, count, iters);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
    if ((err = cudaMemcpyAsync(host_out + begin, dev_out + begin, bytes, cudaMemcpyDeviceToHost, s)) != cudaSuccess)
      return err;
  }
  if (n_streams > 1) {  // the caller's stream waits for every lane, then the host waits for it
    for (int s = 0; s < n_streams; ++s) {
      if ((err = cudaEventRecord(lanes->done[s], lane[s])) != cudaSuccess) return err;
      if ((err = cudaStreamWaitEvent(stream, lanes->done[s], 0)) != cudaSuccess) return err;
    }
  }
  return cudaStreamSynchronize(stream);  // the pipeline ends when host_out holds every result
}
