// Python bindings for the CUTLASS GEMMs: check the tensors, allocate C, call the extern "C" launcher on
// PyTorch's current stream. Only the .cu files see CUTLASS; this file needs torch's headers alone.
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

#include "aisp/binding.h"
#include "launchers.h"

namespace {

using GemmLauncher = cudaError_t (*)(const uint16_t*, const uint16_t*, uint16_t*, int, int, int, cudaStream_t);

// C[M, N] = A[M, K] @ B[N, K]^T in bf16 (nn.Linear's layout: both operands K-major).
torch::Tensor gemm_nt(const torch::Tensor& a, const torch::Tensor& b, GemmLauncher launch, const char* what) {
  aisp::check_tensor(a, "a", torch::kBFloat16, 2);
  aisp::check_tensor(b, "b", torch::kBFloat16, 2);
  TORCH_CHECK(a.size(1) == b.size(1), "a is ", a.sizes(), " and b is ", b.sizes(), ": K differs");
  TORCH_CHECK(a.device() == b.device(), "a and b must be on the same device");
  TORCH_CHECK(a.size(0) < INT32_MAX && b.size(0) < INT32_MAX && a.size(1) < INT32_MAX, "sizes must fit in int32");
  TORCH_CHECK(a.size(1) % 8 == 0 && b.size(0) % 8 == 0, what, ": K and N must be multiples of 8 (16-byte rows), got K = ",
              a.size(1), ", N = ", b.size(0));
  const c10::cuda::CUDAGuard guard(a.device());
  auto c = torch::empty({a.size(0), b.size(0)}, a.options());
  const auto* a_ptr = static_cast<const uint16_t*>(a.data_ptr());
  const auto* b_ptr = static_cast<const uint16_t*>(b.data_ptr());
  aisp::check_launch(launch(a_ptr, b_ptr, static_cast<uint16_t*>(c.data_ptr()), int(a.size(0)), int(b.size(0)),
                            int(a.size(1)), aisp::stream()),
                     what);
  return c;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gemm_sm90", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_cutlass_gemm_sm90, "cutlass_gemm_sm90 (CUTLASS 3, TMA + wgmma; compute capability 9.0 only)");
  });
  m.def("gemm_sm80", [](const torch::Tensor& a, const torch::Tensor& b) {
    return gemm_nt(a, b, launch_cutlass_gemm_sm80, "cutlass_gemm_sm80 (CUTLASS 2.x, mma.sync; sm_80+)");
  });
}
