// Python bindings for this chapter's kernels: each function checks its tensors, allocates the
// outputs, and calls the extern "C" launcher from the .cu files on PyTorch's current stream.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

#include "aisp/binding.h"
#include "launchers.h"

namespace {

using aisp::check_launch;
using aisp::check_tensor;
using aisp::stream;

// host_in: pinned float32 CPU tensor; returns a pinned tensor of the same shape, filled when this returns.
torch::Tensor overlap_pipeline(const torch::Tensor& host_in, int64_t chunks, int64_t n_streams, int64_t iters) {
  TORCH_CHECK(host_in.device().is_cpu() && host_in.is_pinned(), "host_in must be a pinned CPU tensor");
  TORCH_CHECK(host_in.scalar_type() == torch::kFloat32 && host_in.is_contiguous(), "host_in must be contiguous float32");
  const c10::cuda::CUDAGuard guard(c10::cuda::current_device());
  auto dev = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA, c10::cuda::current_device());
  auto dev_in = torch::empty({host_in.numel()}, dev);
  auto dev_out = torch::empty({host_in.numel()}, dev);
  auto host_out = torch::empty_like(host_in, torch::TensorOptions().pinned_memory(true));
  check_launch(launch_overlap_pipeline(host_in.data_ptr<float>(), host_out.data_ptr<float>(), dev_in.data_ptr<float>(),
                                       dev_out.data_ptr<float>(), host_in.numel(), int(chunks), int(n_streams),
                                       int(iters), stream()),
               "overlap_pipeline");
  return host_out;
}

torch::Tensor alloc_loop(const torch::Tensor& x, int64_t iters, int64_t mode) {
  check_tensor(x, "x", torch::kFloat32);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::zeros_like(x);
  check_launch(launch_alloc_loop(x.data_ptr<float>(), out.data_ptr<float>(), x.numel(), int(iters), int(mode), stream()),
               "alloc_loop");
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("overlap_pipeline", &overlap_pipeline, "chunked H2D -> FMA chain -> D2H on n_streams streams (1: current)");
  m.def("alloc_loop", &alloc_loop, "a loop with a temporary per iteration; mode 0 cudaMalloc, 1 pool kept, 2 pool released");
}
