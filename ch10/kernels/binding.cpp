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

using GemmLauncher = cudaError_t (*)(const uint16_t*, const uint16_t*, uint16_t*, int, int, int, cudaStream_t);

// C = A @ B^T with A [m, k] and B [n, k], both bf16 and row-major (B as nn.Linear stores its weight).
torch::Tensor gemm_nt(const torch::Tensor& a, const torch::Tensor& b, GemmLauncher launch, const char* what) {
  check_tensor(a, "a", torch::kBFloat16, 2);
  check_tensor(b, "b", torch::kBFloat16, 2);
  TORCH_CHECK(a.size(1) == b.size(1), "a is ", a.sizes(), " and b is ", b.sizes(), ": k differs (C = a @ b.T)");
  TORCH_CHECK(a.size(1) % 8 == 0, "k must be a multiple of 8 (TMA needs 16-byte row strides), got ", a.size(1));
  TORCH_CHECK(a.device() == b.device(), "a and b must be on the same device");
  TORCH_CHECK(a.size(0) < INT32_MAX && a.size(1) < INT32_MAX && b.size(0) < INT32_MAX, "sizes must fit in int32");
  const c10::cuda::CUDAGuard guard(a.device());
  auto c = torch::empty({a.size(0), b.size(0)}, a.options());
  check_launch(launch(ptr<uint16_t>(a), ptr<uint16_t>(b), mut<uint16_t>(c), int(a.size(0)), int(b.size(0)),
                      int(a.size(1)), stream()),
               what);
  return c;
}

using HistLauncher = cudaError_t (*)(const int32_t*, int64_t, int32_t*, int, cudaStream_t);

torch::Tensor histogram(const torch::Tensor& x, int64_t bins, HistLauncher launch, const char* what) {
  check_tensor(x, "x", torch::kInt32, 1);
  TORCH_CHECK(bins > 0 && bins % 4 == 0 && bins <= (1 << 20), "bins must be a positive multiple of 4, at most 2^20");
  const c10::cuda::CUDAGuard guard(x.device());
  auto hist = torch::empty({bins}, x.options());
  check_launch(launch(ptr<int32_t>(x), x.numel(), mut<int32_t>(hist), int(bins), stream()), what);
  return hist;
}

using SmoothLauncher = cudaError_t (*)(const float*, float*, float*, int64_t, int, cudaStream_t);

torch::Tensor smooth(const torch::Tensor& x, int64_t steps, SmoothLauncher launch, const char* what) {
  check_tensor(x, "x", torch::kFloat32, 1);
  TORCH_CHECK(steps >= 1 && steps < INT32_MAX, "steps must be >= 1");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  auto scratch = torch::empty_like(x);
  check_launch(launch(ptr<float>(x), mut<float>(out), mut<float>(scratch), x.numel(), int(steps), stream()), what);
  return out;
}

}  // namespace

void bind_megakernel(py::module_& m);  // defined at the end of this file

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  bind_megakernel(m);
  m.def("gemm_tma_wgmma_1stage", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_gemm_tma_wgmma_1stage, "gemm_tma_wgmma_1stage (needs sm_90a)");
  });
  m.def("gemm_tma_wgmma_pipelined", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_gemm_tma_wgmma_pipelined, "gemm_tma_wgmma_pipelined (needs sm_90a)");
  });
  m.def("gemm_warp_specialized", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_gemm_warp_specialized, "gemm_warp_specialized (needs sm_90a)");
  });
  m.def("gemm_warp_specialized_persistent", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_gemm_warp_specialized_persistent, "gemm_warp_specialized_persistent (needs sm_90a)");
  });
  m.def("gemm_ws_persistent_mma_overlap", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_gemm_ws_persistent_mma_overlap, "gemm_ws_persistent_mma_overlap (needs sm_90a)");
  });
  m.def("histogram_global_atomics", [](const torch::Tensor& x, int64_t bins) {
    return histogram(x, bins, launch_histogram_global_atomics, "histogram_global_atomics");
  });
  m.def("histogram_cluster_dsmem", [](const torch::Tensor& x, int64_t bins) {
    return histogram(x, bins, launch_histogram_cluster_dsmem, "histogram_cluster_dsmem (needs sm_90+)");
  });
  m.def("smooth_per_step", [](const torch::Tensor& x, int64_t steps) {
    return smooth(x, steps, launch_smooth_per_step, "smooth_per_step");
  });
  m.def("smooth_grid_sync", [](const torch::Tensor& x, int64_t steps) {
    return smooth(x, steps, launch_smooth_grid_sync, "smooth_grid_sync (cooperative launch)");
  });

  // ---- blackwell_gemm.cu (sm_100a; compiled, never run) ----
  m.def("gemm_tcgen05_1stage", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_gemm_tcgen05_1stage, "gemm_tcgen05_1stage (needs sm_100a)");
  });
  m.def("gemm_tcgen05_pipelined", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_gemm_tcgen05_pipelined, "gemm_tcgen05_pipelined (needs sm_100a)");
  });
  m.def("gemm_tcgen05_persistent", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_gemm_tcgen05_persistent, "gemm_tcgen05_persistent (needs sm_100a)");
  });
  // ---- hopper_gemm_fp8.cu: C = (a @ b^T) * scale_a * scale_b, a [m, k] and b [n, k] float8 e4m3 (both K-major),
  // tensorwise fp32 scales (one-element CUDA tensors, read by the kernel: no host sync), bf16 C ------------------
  {
    using Fp8Launcher = cudaError_t (*)(const uint8_t*, const uint8_t*, const float*, const float*, uint16_t*, int,
                                        int, int, cudaStream_t);
    auto gemm_fp8_nt = [](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& scale_a,
                          const torch::Tensor& scale_b, Fp8Launcher launch, const char* what) {
      check_tensor(a, "a", at::kFloat8_e4m3fn, 2);
      check_tensor(b, "b", at::kFloat8_e4m3fn, 2);
      check_tensor(scale_a, "scale_a", torch::kFloat32);
      check_tensor(scale_b, "scale_b", torch::kFloat32);
      TORCH_CHECK(scale_a.numel() == 1 && scale_b.numel() == 1, "scale_a and scale_b must be single fp32 values");
      TORCH_CHECK(a.size(1) == b.size(1), "a is ", a.sizes(), " and b is ", b.sizes(), ": k differs (C = a @ b.T)");
      TORCH_CHECK(a.size(1) % 16 == 0, "k must be a multiple of 16 (TMA needs 16-byte row strides), got ", a.size(1));
      TORCH_CHECK(a.device() == b.device() && a.device() == scale_a.device() && a.device() == scale_b.device(),
                  "a, b and the scales must be on the same device");
      TORCH_CHECK(a.size(0) < INT32_MAX && a.size(1) < INT32_MAX && b.size(0) < INT32_MAX, "sizes must fit in int32");
      const c10::cuda::CUDAGuard guard(a.device());
      auto c = torch::empty({a.size(0), b.size(0)}, a.options().dtype(torch::kBFloat16));
      check_launch(launch(ptr<uint8_t>(a), ptr<uint8_t>(b), ptr<float>(scale_a), ptr<float>(scale_b), mut<uint16_t>(c),
                          int(a.size(0)), int(b.size(0)), int(a.size(1)), stream()),
                   what);
      return c;
    };
    m.def("gemm_fp8_pipelined", [gemm_fp8_nt](const torch::Tensor& a, const torch::Tensor& b,
                                              const torch::Tensor& scale_a, const torch::Tensor& scale_b) {
      return gemm_fp8_nt(a, b, scale_a, scale_b, launch_gemm_fp8_pipelined, "gemm_fp8_pipelined (needs sm_90a)");
    });
    m.def("gemm_fp8_ws_persistent", [gemm_fp8_nt](const torch::Tensor& a, const torch::Tensor& b,
                                                  const torch::Tensor& scale_a, const torch::Tensor& scale_b) {
      return gemm_fp8_nt(a, b, scale_a, scale_b, launch_gemm_fp8_ws_persistent,
                         "gemm_fp8_ws_persistent (needs sm_90a)");
    });
    m.def("gemm_fp8_ws_persistent_mma_overlap", [gemm_fp8_nt](const torch::Tensor& a, const torch::Tensor& b,
                                                              const torch::Tensor& scale_a,
                                                              const torch::Tensor& scale_b) {
      return gemm_fp8_nt(a, b, scale_a, scale_b, launch_gemm_fp8_ws_persistent_mma_overlap,
                         "gemm_fp8_ws_persistent_mma_overlap (needs sm_90a)");
    });
  }
}

// ---- megakernel.cu: the tanh layer chain (see launchers.h). x [batch, width], w [layers, width, width] and
// bias [layers, width], fp32 on one device; batch at most 8.
namespace {

using ChainLauncher = cudaError_t (*)(const float*, const float*, const float*, float*, float*, unsigned*, int, int,
                                      int, cudaStream_t);

torch::Tensor tanh_chain(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias,
                         ChainLauncher launch, const char* what) {
  check_tensor(x, "x", torch::kFloat32, 2);
  check_tensor(w, "w", torch::kFloat32, 3);
  check_tensor(bias, "bias", torch::kFloat32, 2);
  const int64_t batch = x.size(0), width = x.size(1), layers = w.size(0);
  TORCH_CHECK(batch >= 1 && batch <= 8, "batch must be 1 to 8, got ", batch);
  TORCH_CHECK(width >= 1 && width < (1 << 20), "width must be 1 to 2^20, got ", width);
  TORCH_CHECK(layers >= 1 && layers < (1 << 20), "w must hold 1 or more layers, got ", layers);
  TORCH_CHECK(w.size(1) == width && w.size(2) == width, "w is ", w.sizes(), ": want [layers, ", width, ", ", width, "]");
  TORCH_CHECK(bias.size(0) == layers && bias.size(1) == width, "bias is ", bias.sizes(), ": want [", layers, ", ",
              width, "]");
  TORCH_CHECK(x.device() == w.device() && x.device() == bias.device(), "x, w and bias must be on one device");
  for (const auto* t : {&x, &w, &bias})  // the kernels' float4 loads of rows
    TORCH_CHECK(reinterpret_cast<uintptr_t>(t->data_ptr()) % 16 == 0, "x, w and bias must be 16-byte aligned");
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty_like(x);
  auto scratch = torch::empty_like(x);
  auto arrived = torch::empty({layers}, x.options().dtype(torch::kInt32));
  check_launch(launch(ptr<float>(w), ptr<float>(bias), ptr<float>(x), mut<float>(out), mut<float>(scratch),
                      reinterpret_cast<unsigned*>(arrived.data_ptr()), int(batch), int(width), int(layers), stream()),
               what);
  return out;
}

}  // namespace

void bind_megakernel(py::module_& m) {
  m.def("tanh_chain_per_layer", [](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
    return tanh_chain(x, w, bias, launch_tanh_chain_per_layer, "tanh_chain_per_layer");
  });
  m.def("tanh_chain_graph", [](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
    return tanh_chain(x, w, bias, launch_tanh_chain_graph, "tanh_chain_graph");
  });
  m.def("tanh_chain_grid_sync", [](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
    return tanh_chain(x, w, bias, launch_tanh_chain_grid_sync, "tanh_chain_grid_sync (cooperative launch)");
  });
  m.def("tanh_chain_split_barrier", [](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
    return tanh_chain(x, w, bias, launch_tanh_chain_split_barrier, "tanh_chain_split_barrier (cooperative launch)");
  });
}
