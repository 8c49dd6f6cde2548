// Python bindings for this chapter's kernels: each function checks its tensors, allocates the
// outputs and work buffers, and calls the extern "C" launcher from the .cu files on PyTorch's
// current stream. (The device-runtime launchers in rdc/ are loaded separately: see __init__.py.)
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

using ChainLauncher = cudaError_t (*)(const float*, float*, int, cudaStream_t);

torch::Tensor chain(const torch::Tensor& x, int64_t n, ChainLauncher launch, const char* what) {
  check_tensor(x, "x", torch::kFloat32, 1);
  TORCH_CHECK(x.numel() == 1, "x must hold one element");
  TORCH_CHECK(n >= 1 && n <= 100000, "n must be in [1, 100000]");
  const c10::cuda::CUDAGuard guard(x.device());
  auto y = torch::empty_like(x);
  check_launch(launch(x.data_ptr<float>(), y.data_ptr<float>(), int(n), stream()), what);
  return y;
}

void check_rows(const torch::Tensor& values, const torch::Tensor& offsets) {
  check_tensor(values, "values", torch::kFloat32, 1);
  check_tensor(offsets, "offsets", torch::kInt64, 1);
  TORCH_CHECK(offsets.numel() >= 1, "offsets needs rows + 1 entries");
  TORCH_CHECK(values.device() == offsets.device(), "values and offsets must be on the same device");
}

torch::Tensor rows_sum(const torch::Tensor& values, const torch::Tensor& offsets, const std::string& schedule,
                       int64_t grain) {
  check_rows(values, offsets);
  const c10::cuda::CUDAGuard guard(values.device());
  const int64_t rows = offsets.numel() - 1;
  auto out = torch::empty({rows}, values.options());
  const float* v = values.data_ptr<float>();
  const int64_t* o = offsets.data_ptr<int64_t>();
  if (schedule == "static") {
    check_launch(launch_rows_static(v, o, out.data_ptr<float>(), rows, stream()), "rows_static");
  } else if (schedule == "dynamic") {
    auto counter = torch::zeros({1}, values.options().dtype(torch::kInt64));
    check_launch(launch_rows_dynamic(v, o, out.data_ptr<float>(), rows,
                                     reinterpret_cast<unsigned long long*>(counter.data_ptr<int64_t>()), int(grain),
                                     stream()),
                 "rows_dynamic");
  } else if (schedule == "block_per_row") {
    check_launch(launch_rows_block_per_row(v, o, out.data_ptr<float>(), rows, stream()), "rows_block_per_row");
  } else {
    TORCH_CHECK(false, "schedule must be static, dynamic or block_per_row, got ", schedule);
  }
  return out;
}

std::vector<torch::Tensor> jacobi(const torch::Tensor& b, const torch::Tensor& diag, const torch::Tensor& x0,
                                  double tol, int64_t max_iters, bool while_node) {
  for (auto* t : {&b, &diag, &x0}) check_tensor(*t, "b, diag and x0", torch::kFloat32, 1);
  TORCH_CHECK(b.numel() == diag.numel() && b.numel() == x0.numel(), "b, diag and x0 must have the same length");
  const c10::cuda::CUDAGuard guard(b.device());
  const int64_t n = b.numel();
  auto x = torch::empty_like(b);
  auto iters = torch::empty({1}, b.options().dtype(torch::kInt32));
  if (while_node) {
    check_launch(launch_jacobi_while_graph(b.data_ptr<float>(), diag.data_ptr<float>(), x0.data_ptr<float>(),
                                           x.data_ptr<float>(), iters.data_ptr<int>(), n, float(tol), int(max_iters),
                                           stream()),
                 "jacobi_while_graph (needs CUDA 12.4+)");
  } else {
    auto x_new = torch::empty_like(b);
    auto state = torch::zeros({4}, b.options().dtype(torch::kInt32));
    check_launch(launch_jacobi_host_loop(b.data_ptr<float>(), diag.data_ptr<float>(), x0.data_ptr<float>(),
                                         x.data_ptr<float>(), iters.data_ptr<int>(), x_new.data_ptr<float>(),
                                         state.data_ptr<int>(), n, float(tol), int(max_iters), stream()),
                 "jacobi_host_loop");
  }
  return {x, iters};
}

torch::Tensor mariani_silver_multipass(int64_t size, double x0, double y0, double x1, double y1, int64_t max_dwell) {
  TORCH_CHECK(size > 0 && size % ms_size_multiple() == 0, "size must be a positive multiple of ", ms_size_multiple());
  const c10::cuda::CUDAGuard guard(c10::cuda::current_device());
  auto opts = torch::TensorOptions().dtype(torch::kInt32).device(torch::kCUDA, c10::cuda::current_device());
  auto dwells = torch::empty({size, size}, opts);
  const int64_t capacity = ms_list_capacity(int(size));
  auto regions_a = torch::empty({capacity, 4}, opts);
  auto regions_b = torch::empty({capacity, 4}, opts);
  auto count = torch::empty({1}, opts);
  check_launch(launch_mariani_silver_multipass(dwells.data_ptr<int>(), int(size), float(x0), float(y0), float(x1),
                                               float(y1), int(max_dwell),
                                               reinterpret_cast<int4*>(regions_a.data_ptr<int>()),
                                               reinterpret_cast<int4*>(regions_b.data_ptr<int>()),
                                               count.data_ptr<int>(), stream()),
               "mariani_silver_multipass");
  return dwells;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("chain_eager", [](const torch::Tensor& x, int64_t n) { return chain(x, n, launch_chain_eager, "chain_eager"); });
  m.def("chain_graph_replay", [](const torch::Tensor& x, int64_t n) {
    return chain(x, n, launch_chain_graph_replay, "chain_graph_replay");
  });
  m.def("chain_graph_set_params", [](const torch::Tensor& x, int64_t n) {
    return chain(x, n, launch_chain_graph_set_params, "chain_graph_set_params");
  });
  m.def("chain_graph_exec_update", [](const torch::Tensor& x, int64_t n) {
    return chain(x, n, launch_chain_graph_exec_update, "chain_graph_exec_update");
  });
  m.def("chain_graph_recapture", [](const torch::Tensor& x, int64_t n) {
    return chain(x, n, launch_chain_graph_recapture, "chain_graph_recapture");
  });
  m.def("rows_sum", &rows_sum, "per-row sum of sqrt(v*v+1) over CSR rows; schedule static|dynamic|block_per_row",
        py::arg("values"), py::arg("offsets"), py::arg("schedule"), py::arg("grain") = 1);
  m.def("jacobi", &jacobi, "Jacobi sweeps until converged: [x, iterations]", py::arg("b"), py::arg("diag"),
        py::arg("x0"), py::arg("tol"), py::arg("max_iters"), py::arg("while_node"));
  m.def("conditional_nodes_supported", &conditional_nodes_supported);
  m.def("mariani_silver_multipass", &mariani_silver_multipass, "Mandelbrot dwells, Mariani-Silver, host-driven levels");
  m.def("ms_size_multiple", &ms_size_multiple);
}
