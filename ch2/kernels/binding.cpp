// Python bindings for this chapter's CUDA code: managed memory as tensors (a CUDA view that owns the
// allocation and a host view that keeps it alive), the prefetch and advice calls, and the pointer chase.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/extension.h>

#include <tuple>

#include "aisp/binding.h"
#include "launchers.h"

namespace {

using aisp::check_launch;
using aisp::check_tensor;
using aisp::stream;

// A managed allocation of `numel` float32, as a CUDA tensor that frees it when the last view goes.
torch::Tensor managed_empty(int64_t numel, int64_t device) {
  TORCH_CHECK(numel > 0, "numel must be positive");
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  void* ptr = nullptr;
  check_launch(managed_alloc(&ptr, numel * int64_t(sizeof(float))), "cudaMallocManaged");
  auto options = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA, device);
  return torch::from_blob(ptr, {numel}, [](void* p) { managed_free(p); }, options);
}

// The same memory seen from the host; it holds a reference to the CUDA view, so the memory outlives it.
torch::Tensor host_view(const torch::Tensor& managed) {
  TORCH_CHECK(managed.is_cuda() && managed.is_contiguous(), "expects the CUDA view from managed_empty");
  torch::Tensor keep = managed;
  return torch::from_blob(managed.data_ptr(), managed.sizes(), [keep](void*) {},
                          managed.options().device(torch::kCPU));
}

// A pageable host tensor seen as a CUDA tensor at the same address: valid only where the GPU reads pageable
// memory (ATS over NVLink-C2C, or HMM); the caller checks that first.
torch::Tensor pageable_as_cuda(const torch::Tensor& host, int64_t device) {
  TORCH_CHECK(host.device().is_cpu() && host.is_contiguous() && !host.is_pinned(), "expects a pageable CPU tensor");
  torch::Tensor keep = host;
  return torch::from_blob(host.data_ptr(), host.sizes(), [keep](void*) {},
                          host.options().device(torch::kCUDA, static_cast<c10::DeviceIndex>(device)));
}

void prefetch(const torch::Tensor& managed, int64_t device) {
  const c10::cuda::CUDAGuard guard(managed.device());
  check_launch(managed_prefetch(managed.data_ptr(), managed.numel() * managed.element_size(), int(device), stream()),
               "cudaMemPrefetchAsync");
}

void advise(const torch::Tensor& managed, int64_t advice, int64_t device) {
  const c10::cuda::CUDAGuard guard(managed.device());
  check_launch(managed_advise(managed.data_ptr(), managed.numel() * managed.element_size(), int(advice), int(device)),
               "cudaMemAdvise");
}

torch::Tensor chase(const torch::Tensor& next, const torch::Tensor& start, int64_t hops, int64_t blocks_per_sm) {
  check_tensor(next, "next", torch::kInt32, 1);
  check_tensor(start, "start", torch::kInt32, 1);
  TORCH_CHECK(next.device() == start.device(), "next and start must be on one device");
  const c10::cuda::CUDAGuard guard(next.device());
  auto out = torch::empty_like(start);
  check_launch(launch_chase(int(blocks_per_sm), next.data_ptr<int32_t>(), start.data_ptr<int32_t>(),
                            out.data_ptr<int32_t>(), start.numel(), int(hops), stream()),
               "chase");
  return out;
}

std::tuple<int, int, int, int> chase_occupancy(int64_t blocks_per_sm) {
  int launched = 0, most = 0, warp = 0, sms = 0;
  check_launch(chase_info(int(blocks_per_sm), &launched, &most, &warp, &sms), "chase_info");
  return {launched, most, warp, sms};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("managed_empty", &managed_empty, "float32 managed memory as a CUDA tensor");
  m.def("host_view", &host_view, "the host's view of a managed CUDA tensor");
  m.def("pageable_as_cuda", &pageable_as_cuda, "a pageable CPU tensor as a CUDA tensor (coherent systems only)");
  m.def("prefetch", &prefetch, "cudaMemPrefetchAsync to a GPU (device >= 0) or the host (-1)");
  m.def("advise", &advise, "cudaMemAdvise(advice, device); device -1: the host");
  m.def("chase", &chase, "follow `next` from each start for `hops` dependent loads");
  m.def("chase_occupancy", &chase_occupancy, "(blocks/SM launched, most blocks/SM that fit, warp size, SMs)");
}
