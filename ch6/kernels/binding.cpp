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

torch::Tensor vector_add(const torch::Tensor& a, const torch::Tensor& b, bool one_thread) {
  check_tensor(a, "a", torch::kFloat32);
  check_tensor(b, "b", torch::kFloat32);
  TORCH_CHECK(a.sizes() == b.sizes() && a.device() == b.device(), "a and b must match in shape and device");
  const c10::cuda::CUDAGuard guard(a.device());
  auto out = torch::empty_like(a);
  auto launch = one_thread ? launch_add_one_thread : launch_add_per_element;
  check_launch(launch(a.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>(), a.numel(), stream()),
               one_thread ? "add_one_thread" : "add_per_element");
  return out;
}

torch::Tensor affine(const torch::Tensor& x, const torch::Tensor& row_scale, const torch::Tensor& col_bias,
                     bool two_d) {
  check_tensor(x, "x", torch::kFloat32, 2);
  check_tensor(row_scale, "row_scale", torch::kFloat32, 1);
  check_tensor(col_bias, "col_bias", torch::kFloat32, 1);
  TORCH_CHECK(row_scale.size(0) == x.size(0) && col_bias.size(0) == x.size(1),
              "row_scale must have x.size(0) elements and col_bias x.size(1)");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  auto launch = two_d ? launch_affine_2d : launch_affine_1d_grid_stride;
  check_launch(launch(x.data_ptr<float>(), row_scale.data_ptr<float>(), col_bias.data_ptr<float>(),
                      out.data_ptr<float>(), x.size(0), x.size(1), stream()),
               two_d ? "affine_2d" : "affine_1d_grid_stride");
  return out;
}

torch::Tensor affine_float4(const torch::Tensor& x, const torch::Tensor& row_scale, const torch::Tensor& col_bias,
                            int64_t rows_per_thread, int64_t block_y) {
  check_tensor(x, "x", torch::kFloat32, 2);
  check_tensor(row_scale, "row_scale", torch::kFloat32, 1);
  check_tensor(col_bias, "col_bias", torch::kFloat32, 1);
  TORCH_CHECK(row_scale.size(0) == x.size(0) && col_bias.size(0) == x.size(1),
              "row_scale must have x.size(0) elements and col_bias x.size(1)");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch_affine_2d_float4(x.data_ptr<float>(), row_scale.data_ptr<float>(), col_bias.data_ptr<float>(),
                                       out.data_ptr<float>(), x.size(0), x.size(1), int(rows_per_thread),
                                       int(block_y), stream()),
               "affine_2d_float4 (rows_per_thread must be 0, 1, 2, 4 or 8; block_y 0..32)");
  return out;
}

torch::Tensor saxpy(double a, const torch::Tensor& x, const torch::Tensor& y, bool float4) {
  check_tensor(x, "x", torch::kFloat32);
  check_tensor(y, "y", torch::kFloat32);
  TORCH_CHECK(x.sizes() == y.sizes(), "x and y must have the same shape");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  auto launch = float4 ? launch_saxpy_float4 : launch_saxpy_scalar;
  check_launch(launch(x.numel(), float(a), x.data_ptr<float>(), y.data_ptr<float>(), out.data_ptr<float>(), stream()),
               float4 ? "saxpy_float4 (needs 16-byte aligned tensors)" : "saxpy_scalar");
  return out;
}

torch::Tensor silu(const torch::Tensor& x, bool occupancy_api) {
  check_tensor(x, "x", torch::kFloat32);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  auto launch = occupancy_api ? launch_silu_occupancy_api : launch_silu_fixed_block;
  check_launch(launch(x.data_ptr<float>(), out.data_ptr<float>(), x.numel(), stream()),
               occupancy_api ? "silu_occupancy_api" : "silu_fixed_block");
  return out;
}

torch::Tensor silu_float4(const torch::Tensor& x, int64_t block, int64_t vecs, int64_t waves) {
  check_tensor(x, "x", torch::kFloat32);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  check_launch(launch_silu_float4(x.data_ptr<float>(), out.data_ptr<float>(), x.numel(), int(block), int(vecs),
                                  int(waves), stream()),
               "silu_float4 (needs 16-byte aligned tensors; block 0 or a multiple of 32 up to 1024; vecs 0, 1, 2, 4 "
               "or 8)");
  return out;
}

std::tuple<int, int> silu_occupancy(bool float4) {
  int min_grid = 0, block = 0;
  check_launch(float4 ? silu_float4_occupancy_choice(&min_grid, &block) : silu_occupancy_choice(&min_grid, &block),
               "cudaOccupancyMaxPotentialBlockSize");
  return {min_grid, block};
}

int blocks_per_sm(bool grid_stride_kernel, int block) {
  int blocks = 0;
  check_launch(silu_blocks_per_sm(grid_stride_kernel, block, &blocks), "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  return blocks;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("add_one_thread", [](const torch::Tensor& a, const torch::Tensor& b) { return vector_add(a, b, true); });
  m.def("add_per_element", [](const torch::Tensor& a, const torch::Tensor& b) { return vector_add(a, b, false); });
  m.def("affine_2d", [](const torch::Tensor& x, const torch::Tensor& s, const torch::Tensor& b) {
    return affine(x, s, b, true);
  });
  m.def("affine_1d_grid_stride", [](const torch::Tensor& x, const torch::Tensor& s, const torch::Tensor& b) {
    return affine(x, s, b, false);
  });
  m.def("affine_2d_float4", &affine_float4, "float4 2D kernel; 0 picks the default configuration", py::arg("x"),
        py::arg("row_scale"), py::arg("col_bias"), py::arg("rows_per_thread") = 0, py::arg("block_y") = 0);
  m.def("saxpy_scalar", [](double a, const torch::Tensor& x, const torch::Tensor& y) { return saxpy(a, x, y, false); });
  m.def("saxpy_float4", [](double a, const torch::Tensor& x, const torch::Tensor& y) { return saxpy(a, x, y, true); });
  m.def("silu_fixed_block", [](const torch::Tensor& x) { return silu(x, false); });
  m.def("silu_occupancy_api", [](const torch::Tensor& x) { return silu(x, true); });
  m.def("silu_float4", &silu_float4,
        "float4 grid-stride SiLU: block 0 asks the occupancy API, vecs 0 and waves -1 pick the defaults", py::arg("x"),
        py::arg("block") = 0, py::arg("vecs") = 0, py::arg("waves") = -1);
  m.def("silu_occupancy", &silu_occupancy,
        "(min grid, block size) the occupancy API proposes for the grid-stride SiLU (scalar, or float4)",
        py::arg("float4") = false);
  m.def("blocks_per_sm", &blocks_per_sm, "resident blocks per SM for a SiLU kernel at a block size");
}
