// Python bindings for this chapter's kernels: each function checks its tensors, allocates the
// output, and calls the extern "C" launcher from the .cu files on PyTorch's current stream.
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

using ScaleLauncher = cudaError_t (*)(const float*, float*, float, int64_t, int64_t, cudaStream_t);

torch::Tensor scale_2d(const torch::Tensor& x, double alpha, ScaleLauncher launch, const char* what) {
  check_tensor(x, "x", torch::kFloat32, 2);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch(x.data_ptr<float>(), out.data_ptr<float>(), float(alpha), x.size(0), x.size(1), stream()), what);
  return out;
}

using Bf16Launcher = cudaError_t (*)(const uint16_t*, uint16_t*, float, int64_t, cudaStream_t);

torch::Tensor scale_bf16(const torch::Tensor& x, double alpha, Bf16Launcher launch, const char* what) {
  check_tensor(x, "x", torch::kBFloat16);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch(static_cast<const uint16_t*>(x.data_ptr()), static_cast<uint16_t*>(out.data_ptr()),
                      float(alpha), x.numel(), stream()),
               what);
  return out;
}

using TransposeLauncher = cudaError_t (*)(const float*, float*, int64_t, int64_t, cudaStream_t);

torch::Tensor transpose(const torch::Tensor& x, TransposeLauncher launch, const char* what) {
  check_tensor(x, "x", torch::kFloat32, 2);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty({x.size(1), x.size(0)}, x.options());
  check_launch(launch(x.data_ptr<float>(), out.data_ptr<float>(), x.size(0), x.size(1), stream()), what);
  return out;
}

using CopyLauncher = cudaError_t (*)(const void*, void*, int64_t, cudaStream_t);

torch::Tensor copy(const torch::Tensor& x, CopyLauncher launch, const char* what) {
  TORCH_CHECK(x.is_cuda() && x.is_contiguous(), "x must be a contiguous CUDA tensor");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch(x.data_ptr(), out.data_ptr(), x.numel() * x.element_size(), stream()), what);
  return out;
}

using StencilLauncher = cudaError_t (*)(const float*, float*, const float*, int64_t, cudaStream_t);

torch::Tensor stencil(const torch::Tensor& x, const torch::Tensor& taps, StencilLauncher launch, const char* what) {
  check_tensor(x, "x", torch::kFloat32, 1);
  check_tensor(taps, "taps", torch::kFloat32, 1);
  TORCH_CHECK(taps.numel() == 2 * stencil_radius() + 1, "taps must have ", 2 * stencil_radius() + 1, " elements");
  TORCH_CHECK(x.numel() % 4 == 0, "the stencil kernels need x.numel() % 4 == 0, got ", x.numel());
  TORCH_CHECK(taps.device() == x.device(), "x and taps must be on the same device");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch(x.data_ptr<float>(), out.data_ptr<float>(), taps.data_ptr<float>(), x.numel(), stream()), what);
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scale_coalesced", [](const torch::Tensor& x, double a) {
    return scale_2d(x, a, launch_scale_coalesced, "scale_coalesced");
  });
  m.def("scale_strided", [](const torch::Tensor& x, double a) {
    return scale_2d(x, a, launch_scale_strided, "scale_strided");
  });
  m.def("scale_bf16_scalar", [](const torch::Tensor& x, double a) {
    return scale_bf16(x, a, launch_scale_bf16_scalar, "scale_bf16_scalar");
  });
  m.def("scale_bf16_vec16", [](const torch::Tensor& x, double a) {
    return scale_bf16(x, a, launch_scale_bf16_vec16, "scale_bf16_vec16 (needs 16-byte aligned tensors)");
  });
  m.def("transpose_naive", [](const torch::Tensor& x) { return transpose(x, launch_transpose_naive, "transpose_naive"); });
  m.def("transpose_tiled", [](const torch::Tensor& x) { return transpose(x, launch_transpose_tiled, "transpose_tiled"); });
  m.def("transpose_tiled_padded", [](const torch::Tensor& x) {
    return transpose(x, launch_transpose_tiled_padded, "transpose_tiled_padded");
  });
  m.def("copy_vec16", [](const torch::Tensor& x) { return copy(x, launch_copy_vec16, "copy_vec16"); });
  m.def("copy_vec16_x4", [](const torch::Tensor& x) { return copy(x, launch_copy_vec16_x4, "copy_vec16_x4"); });
  m.def("stencil_radius", &stencil_radius);
  m.def("stencil_plain", [](const torch::Tensor& x, const torch::Tensor& taps) {
    return stencil(x, taps, launch_stencil_plain, "stencil_plain");
  });
  m.def("stencil_cp_async", [](const torch::Tensor& x, const torch::Tensor& taps) {
    return stencil(x, taps, launch_stencil_cp_async, "stencil_cp_async");
  });
  m.def("stencil_bulk_copy", [](const torch::Tensor& x, const torch::Tensor& taps) {
    return stencil(x, taps, launch_stencil_bulk_copy, "stencil_bulk_copy (needs sm_90+)");
  });
}
