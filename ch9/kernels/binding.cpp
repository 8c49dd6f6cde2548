// Python bindings for this chapter's kernels: each function checks its tensors, allocates the output,
// and calls the extern "C" launcher from the .cu files on PyTorch's current stream.
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

template <typename T>
const T* ptr(const torch::Tensor& t) { return static_cast<const T*>(t.data_ptr()); }
template <typename T>
T* mut(torch::Tensor& t) { return static_cast<T*>(t.data_ptr()); }

void check_matmul(const torch::Tensor& a, const torch::Tensor& b, at::ScalarType dtype) {
  check_tensor(a, "a", dtype, 2);
  check_tensor(b, "b", dtype, 2);
  TORCH_CHECK(a.size(1) == b.size(0), "a is ", a.sizes(), " and b is ", b.sizes(), ": inner sizes differ");
  TORCH_CHECK(a.device() == b.device(), "a and b must be on the same device");
  TORCH_CHECK(a.size(0) < INT32_MAX && a.size(1) < INT32_MAX && b.size(1) < INT32_MAX, "sizes must fit in int32");
}

using SgemmLauncher = cudaError_t (*)(const float*, const float*, float*, int, int, int, cudaStream_t);

torch::Tensor sgemm(const torch::Tensor& a, const torch::Tensor& b, SgemmLauncher launch, const char* what) {
  check_matmul(a, b, torch::kFloat32);
  const c10::cuda::CUDAGuard guard(a.device());
  auto c = torch::empty({a.size(0), b.size(1)}, a.options());
  check_launch(launch(ptr<float>(a), ptr<float>(b), mut<float>(c), int(a.size(0)), int(b.size(1)), int(a.size(1)),
                      stream()),
               what);
  return c;
}

using Bf16GemmLauncher = cudaError_t (*)(const uint16_t*, const uint16_t*, uint16_t*, int, int, int, cudaStream_t);

torch::Tensor gemm_bf16(const torch::Tensor& a, const torch::Tensor& b, Bf16GemmLauncher launch, const char* what) {
  check_matmul(a, b, torch::kBFloat16);
  const c10::cuda::CUDAGuard guard(a.device());
  auto c = torch::empty({a.size(0), b.size(1)}, a.options());
  check_launch(launch(ptr<uint16_t>(a), ptr<uint16_t>(b), mut<uint16_t>(c), int(a.size(0)), int(b.size(1)),
                      int(a.size(1)), stream()),
               what);
  return c;
}

using L2normLauncher = cudaError_t (*)(const uint16_t*, uint16_t*, int64_t, int64_t, cudaStream_t);

torch::Tensor l2norm(const torch::Tensor& x, L2normLauncher launch, const char* what) {
  check_tensor(x, "x", torch::kBFloat16, 2);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch(ptr<uint16_t>(x), mut<uint16_t>(out), x.size(0), x.size(1), stream()), what);
  return out;
}

using BiasGeluLauncher = cudaError_t (*)(const uint16_t*, const uint16_t*, const uint16_t*, uint16_t*, int64_t,
                                         int64_t, cudaStream_t);

torch::Tensor bias_gelu_residual(const torch::Tensor& x, const torch::Tensor& bias, const torch::Tensor& residual,
                                 BiasGeluLauncher launch, const char* what) {
  check_tensor(x, "x", torch::kBFloat16, 2);
  check_tensor(bias, "bias", torch::kBFloat16, 1);
  check_tensor(residual, "residual", torch::kBFloat16, 2);
  TORCH_CHECK(bias.size(0) == x.size(1), "bias must have x.size(1) = ", x.size(1), " elements");
  TORCH_CHECK(residual.sizes() == x.sizes(), "residual must have x's shape");
  TORCH_CHECK(bias.device() == x.device() && residual.device() == x.device(), "tensors on different devices");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch(ptr<uint16_t>(x), ptr<uint16_t>(bias), ptr<uint16_t>(residual), mut<uint16_t>(out), x.size(0),
                      x.size(1), stream()),
               what);
  return out;
}

using AxpyLauncher = cudaError_t (*)(const float*, const float*, float*, float, int64_t, cudaStream_t);

torch::Tensor axpy(const torch::Tensor& x, const torch::Tensor& y, double alpha, AxpyLauncher launch,
                   const char* what) {
  check_tensor(x, "x", torch::kFloat32, 1);
  check_tensor(y, "y", torch::kFloat32, 1);
  TORCH_CHECK(x.numel() == y.numel() && x.device() == y.device(), "x and y must match in size and device");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch(ptr<float>(x), ptr<float>(y), mut<float>(out), float(alpha), x.numel(), stream()), what);
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("sgemm_naive", [](const torch::Tensor& a, const torch::Tensor& b) {
    return sgemm(a, b, launch_sgemm_naive, "sgemm_naive");
  });
  m.def("sgemm_smem", [](const torch::Tensor& a, const torch::Tensor& b) {
    return sgemm(a, b, launch_sgemm_smem, "sgemm_smem");
  });
  m.def("sgemm_regtile", [](const torch::Tensor& a, const torch::Tensor& b) {
    return sgemm(a, b, launch_sgemm_regtile, "sgemm_regtile");
  });
  m.def("sgemm_regtile_vec4", [](const torch::Tensor& a, const torch::Tensor& b) {
    return sgemm(a, b, launch_sgemm_regtile_vec4, "sgemm_regtile_vec4");
  });
  m.def("gemm_bf16_simt", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_bf16(a, b, launch_gemm_bf16_simt, "gemm_bf16_simt");
  });
  m.def("gemm_bf16_wmma", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_bf16(a, b, launch_gemm_bf16_wmma, "gemm_bf16_wmma (needs sm_80+)");
  });
  m.def("l2norm_fused", [](const torch::Tensor& x) { return l2norm(x, launch_l2norm_fused, "l2norm_fused"); });
  m.def("l2norm_fused_regs",
        [](const torch::Tensor& x) { return l2norm(x, launch_l2norm_fused_regs, "l2norm_fused_regs"); });
  m.def("bias_gelu_residual", [](const torch::Tensor& x, const torch::Tensor& b, const torch::Tensor& r) {
    return bias_gelu_residual(x, b, r, launch_bias_gelu_residual, "bias_gelu_residual");
  });
  m.def("bias_gelu_residual_rows", [](const torch::Tensor& x, const torch::Tensor& b, const torch::Tensor& r) {
    return bias_gelu_residual(x, b, r, launch_bias_gelu_residual_rows, "bias_gelu_residual_rows");
  });
  m.def("axpy_plain", [](const torch::Tensor& x, const torch::Tensor& y, double alpha) {
    return axpy(x, y, alpha, launch_axpy_plain, "axpy_plain (needs 16-byte aligned tensors)");
  });
  m.def("axpy_ptx_stream", [](const torch::Tensor& x, const torch::Tensor& y, double alpha) {
    return axpy(x, y, alpha, launch_axpy_ptx_stream, "axpy_ptx_stream (needs 16-byte aligned tensors)");
  });
}
