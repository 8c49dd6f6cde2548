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

torch::Tensor scale_ilp(const torch::Tensor& x, double alpha, int64_t elems, int64_t block, int64_t waves) {
  check_tensor(x, "x", torch::kFloat32, 2);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch_scale_coalesced_ilp(x.data_ptr<float>(), out.data_ptr<float>(), float(alpha), x.size(0),
                                          x.size(1), int(elems), int(block), int(waves), stream()),
               "scale_coalesced_ilp (elems 0, 1, 2, 4 or 8; block 0 or a multiple of 32 up to 1024)");
  return out;
}

// rows_per_pass < 0: a launcher without that parameter (the naive kernel)
using TransposeLauncher = cudaError_t (*)(const float*, float*, int64_t, int64_t, int, cudaStream_t);

torch::Tensor transpose(const torch::Tensor& x, TransposeLauncher launch, int64_t rows_per_pass, const char* what) {
  check_tensor(x, "x", torch::kFloat32, 2);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty({x.size(1), x.size(0)}, x.options());
  check_launch(launch(x.data_ptr<float>(), out.data_ptr<float>(), x.size(0), x.size(1), int(rows_per_pass), stream()),
               what);
  return out;
}

cudaError_t launch_naive(const float* in, float* out, int64_t rows, int64_t cols, int, cudaStream_t s) {
  return launch_transpose_naive(in, out, rows, cols, s);
}

using CopyLauncher = cudaError_t (*)(const void*, void*, int64_t, cudaStream_t);

torch::Tensor copy(const torch::Tensor& x, CopyLauncher launch, const char* what) {
  TORCH_CHECK(x.is_cuda() && x.is_contiguous(), "x must be a contiguous CUDA tensor");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch(x.data_ptr(), out.data_ptr(), x.numel() * x.element_size(), stream()), what);
  return out;
}

using StencilLauncher = cudaError_t (*)(const float*, float*, const float*, int64_t, int, cudaStream_t);

cudaError_t launch_plain(const float* x, float* out, const float* taps, int64_t n, int, cudaStream_t s) {
  return launch_stencil_plain(x, out, taps, n, s);
}

torch::Tensor stencil(const torch::Tensor& x, const torch::Tensor& taps, StencilLauncher launch, int64_t stages,
                      const char* what) {
  check_tensor(x, "x", torch::kFloat32, 1);
  check_tensor(taps, "taps", torch::kFloat32, 1);
  TORCH_CHECK(taps.numel() == 2 * stencil_radius() + 1, "taps must have ", 2 * stencil_radius() + 1, " elements");
  TORCH_CHECK(x.numel() % 4 == 0, "the stencil kernels need x.numel() % 4 == 0, got ", x.numel());
  TORCH_CHECK(taps.device() == x.device(), "x and taps must be on the same device");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch(x.data_ptr<float>(), out.data_ptr<float>(), taps.data_ptr<float>(), x.numel(), int(stages),
                      stream()),
               what);
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
  m.def("scale_coalesced_ilp", &scale_ilp, "coalesced, several loads in flight per thread; 0 / -1: defaults",
        py::arg("x"), py::arg("alpha"), py::arg("elems") = 0, py::arg("block") = 0, py::arg("waves") = -1);
  m.def("scale_bf16_scalar", [](const torch::Tensor& x, double a) {
    return scale_bf16(x, a, launch_scale_bf16_scalar, "scale_bf16_scalar");
  });
  m.def("scale_bf16_vec16", [](const torch::Tensor& x, double a) {
    return scale_bf16(x, a, launch_scale_bf16_vec16, "scale_bf16_vec16 (needs 16-byte aligned tensors)");
  });
  m.def("transpose_naive", [](const torch::Tensor& x) { return transpose(x, launch_naive, 0, "transpose_naive"); });
  m.def(
      "transpose_tiled",
      [](const torch::Tensor& x, int64_t rows_per_pass) {
        return transpose(x, launch_transpose_tiled, rows_per_pass, "transpose_tiled (rows_per_pass 0, 2, 4, 8 or 16)");
      },
      py::arg("x"), py::arg("rows_per_pass") = 0);
  m.def(
      "transpose_tiled_padded",
      [](const torch::Tensor& x, int64_t rows_per_pass) {
        return transpose(x, launch_transpose_tiled_padded, rows_per_pass,
                         "transpose_tiled_padded (rows_per_pass 0, 2, 4, 8 or 16)");
      },
      py::arg("x"), py::arg("rows_per_pass") = 0);
  m.def(
      "transpose_tiled_float4",
      [](const torch::Tensor& x, int64_t rows_per_pass) {
        return transpose(x, launch_transpose_tiled_float4, rows_per_pass,
                         "transpose_tiled_float4 (rows_per_pass 0, 4, 8, 16 or 32)");
      },
      py::arg("x"), py::arg("rows_per_pass") = 0);
  m.def("copy_scalar", [](const torch::Tensor& x) { return copy(x, launch_copy_scalar, "copy_scalar"); });
  m.def("copy_vec16", [](const torch::Tensor& x) { return copy(x, launch_copy_vec16, "copy_vec16"); });
  m.def("copy_vec16_x4", [](const torch::Tensor& x) { return copy(x, launch_copy_vec16_x4, "copy_vec16_x4"); });
  m.def("stencil_radius", &stencil_radius);
  m.def("stencil_plain", [](const torch::Tensor& x, const torch::Tensor& taps) {
    return stencil(x, taps, launch_plain, 0, "stencil_plain");
  });
  m.def(
      "stencil_cp_async",
      [](const torch::Tensor& x, const torch::Tensor& taps, int64_t stages) {
        return stencil(x, taps, launch_stencil_cp_async, stages, "stencil_cp_async (stages 0, 2, 3 or 4)");
      },
      py::arg("x"), py::arg("taps"), py::arg("stages") = 0);
  m.def(
      "stencil_bulk_copy",
      [](const torch::Tensor& x, const torch::Tensor& taps, int64_t stages) {
        return stencil(x, taps, launch_stencil_bulk_copy, stages,
                       "stencil_bulk_copy (needs sm_90+; stages 0, 2, 3 or 4)");
      },
      py::arg("x"), py::arg("taps"), py::arg("stages") = 0);
}
