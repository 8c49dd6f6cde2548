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

torch::Tensor gather(const torch::Tensor& table, const torch::Tensor& idx, double scale, int64_t mode,
                     int64_t min_blocks_per_sm) {
  check_tensor(table, "table", torch::kFloat32, 1);
  check_tensor(idx, "idx", torch::kInt32, 1);
  TORCH_CHECK(table.device() == idx.device(), "table and idx must be on the same device");
  const c10::cuda::CUDAGuard guard(table.device());
  auto out = torch::empty(idx.sizes(), table.options());
  check_launch(launch_gather(int(min_blocks_per_sm), table.data_ptr<float>(), table.numel(), idx.data_ptr<int32_t>(),
                             out.data_ptr<float>(), idx.numel(), float(scale), int(mode), stream()),
               "gather (min_blocks_per_sm must be 0, 4 or 8; mode 0 or 1)");
  return out;
}

std::tuple<int, int, int> gather_info(int64_t min_blocks_per_sm) {
  int registers = 0, local_bytes = 0, blocks = 0;
  check_launch(gather_kernel_info(int(min_blocks_per_sm), &registers, &local_bytes, &blocks), "gather_kernel_info");
  return {registers, local_bytes, blocks};
}

torch::Tensor row_sum(const torch::Tensor& x, int64_t accumulators) {
  check_tensor(x, "x", torch::kFloat32, 2);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty({x.size(0)}, x.options());
  check_launch(launch_row_sum(int(accumulators), x.data_ptr<float>(), out.data_ptr<float>(), x.size(0), x.size(1),
                              stream()),
               "row_sum (accumulators must be 1, 4 or 8)");
  return out;
}

void check_poly(const torch::Tensor& x, const torch::Tensor& coeffs) {
  check_tensor(x, "x", torch::kBFloat16);
  check_tensor(coeffs, "coeffs", torch::kFloat32, 1);
  TORCH_CHECK(coeffs.device() == x.device(), "x and coeffs must be on the same device");
}

torch::Tensor piecewise(const torch::Tensor& x, const torch::Tensor& coeffs, double threshold, double scale_lo,
                        double gain_lo, double scale_hi, double gain_hi, bool predicated) {
  check_poly(x, coeffs);
  TORCH_CHECK(coeffs.numel() == poly_degree() + 1, "coeffs must have ", poly_degree() + 1, " elements");
  const c10::cuda::CUDAGuard guard(x.device());
  auto y = torch::empty_like(x);
  auto launch = predicated ? launch_piecewise_predicated : launch_piecewise_branchy;
  check_launch(launch(static_cast<const uint16_t*>(x.data_ptr()), static_cast<uint16_t*>(y.data_ptr()),
                      coeffs.data_ptr<float>(), float(threshold), float(scale_lo), float(gain_lo), float(scale_hi),
                      float(gain_hi), x.numel(), stream()),
               predicated ? "piecewise_predicated" : "piecewise_branchy");
  return y;
}

torch::Tensor poly(const torch::Tensor& x, const torch::Tensor& coeffs, bool fixed_degree) {
  check_poly(x, coeffs);
  TORCH_CHECK(coeffs.numel() >= 1, "coeffs must not be empty");
  const c10::cuda::CUDAGuard guard(x.device());
  auto y = torch::empty_like(x);
  auto launch = fixed_degree ? launch_poly_fixed_degree : launch_poly_runtime_degree;
  check_launch(launch(static_cast<const uint16_t*>(x.data_ptr()), static_cast<uint16_t*>(y.data_ptr()),
                      coeffs.data_ptr<float>(), int(coeffs.numel() - 1), x.numel(), stream()),
               fixed_degree ? "poly_fixed_degree (compiled for degree poly_degree() only)" : "poly_runtime_degree");
  return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gather", &gather, "table[idx] * scale (mode 0) or the pooled lookup (mode 1)", py::arg("table"),
        py::arg("idx"), py::arg("scale"), py::arg("mode") = 0, py::arg("min_blocks_per_sm") = 0);
  m.def("gather_info", &gather_info, "(registers/thread, spill bytes/thread, resident blocks/SM) of a variant");
  m.def("row_sum", &row_sum, py::arg("x"), py::arg("accumulators"));
  m.def("poly_degree", &poly_degree);
  m.def("piecewise_branchy", [](const torch::Tensor& x, const torch::Tensor& c, double t, double s_lo, double g_lo,
                                double s_hi, double g_hi) { return piecewise(x, c, t, s_lo, g_lo, s_hi, g_hi, false); });
  m.def("piecewise_predicated", [](const torch::Tensor& x, const torch::Tensor& c, double t, double s_lo, double g_lo,
                                   double s_hi, double g_hi) { return piecewise(x, c, t, s_lo, g_lo, s_hi, g_hi, true); });
  m.def("poly_runtime_degree", [](const torch::Tensor& x, const torch::Tensor& c) { return poly(x, c, false); });
  m.def("poly_fixed_degree", [](const torch::Tensor& x, const torch::Tensor& c) { return poly(x, c, true); });
}
