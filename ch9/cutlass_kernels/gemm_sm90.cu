// aisp: arch sm_90a
// aisp: include cutlass
// aisp: ci-archs sm_90a
// A CUTLASS 3 bf16 GEMM for Hopper: C[M, N] = A[M, K] @ B[N, K]^T, both operands K-major (nn.Linear's
// layout), fp32 accumulation, bf16 C. One instantiation, put together by CUTLASS's CollectiveBuilders:
//   mainloop: TMA loads into swizzled shared memory, wgmma, a multi-stage mbarrier ring, a producer
//             warpgroup issuing TMA and two consumer warpgroups ("cooperative": both consumers share one 128x256 tile);
//   kernel:   persistent (grid = SMs, each CTA loops over tiles), clusters of 2 CTAs along M that
//             multicast the B tile they share;
//   epilogue: TMA stores, no C source read (beta = 0: ElementC = void).
// The same ideas as ch10/kernels/hopper_gemm.cu, written by the library. CUTLASS guards its sm_90a kernels
// itself: compiled for any other target the kernel body is empty (a trap message), so this file compiles
// for sm_80/sm_90/sm_100 too, and the launcher refuses to launch on anything but compute capability 9.0.
// CUTLASS's device asserts are function calls, and a call inside the wgmma pipeline makes ptxas serialize
// it (C7510: "wgmma pipeline crossing function boundary"); release builds define NDEBUG, before any header.
#ifndef NDEBUG
#define NDEBUG
#endif
#include "launchers.h"

#include "cutlass/cutlass.h"
#include "cute/tensor.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"

namespace {

using namespace cute;

using Element = cutlass::bfloat16_t;
using LayoutA = cutlass::layout::RowMajor;     // A [M, K], K contiguous
using LayoutB = cutlass::layout::ColumnMajor;  // B as a K x N matrix stored [N, K]: K contiguous
using LayoutD = cutlass::layout::RowMajor;     // C [M, N]
constexpr int kAlignment = 8;                  // 16 bytes of bf16: TMA needs 16-byte row strides
using Accumulator = float;
using TileShape = Shape<_128, _256, _64>;
using ClusterShape = Shape<_2, _1, _1>;

using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
    cutlass::epilogue::collective::EpilogueTileAuto, Accumulator, Accumulator,
    void, LayoutD, kAlignment,      // C: none (beta = 0), so no source tensor is read
    Element, LayoutD, kAlignment,   // D: the bf16 result
    cutlass::epilogue::TmaWarpSpecializedCooperative>::CollectiveOp;

using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Element, LayoutA, kAlignment, Element, LayoutB,
    kAlignment, Accumulator, TileShape, ClusterShape,
    cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
    cutlass::gemm::KernelTmaWarpSpecializedCooperative>::CollectiveOp;

using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue>;
using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

}  // namespace

extern "C" cudaError_t launch_cutlass_gemm_sm90(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n,
                                                int k, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  int device = 0, major = 0, minor = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  if (major != 9 || minor != 0) return cudaErrorNotSupported;  // sm_90a code: wgmma exists only on 9.0
  if (k % kAlignment != 0 || n % kAlignment != 0) return cudaErrorInvalidValue;  // 16-byte TMA strides

  auto stride_a = cutlass::make_cute_packed_stride(typename Kernel::StrideA{}, {m, k, 1});
  auto stride_b = cutlass::make_cute_packed_stride(typename Kernel::StrideB{}, {n, k, 1});
  auto stride_d = cutlass::make_cute_packed_stride(typename Kernel::StrideD{}, {m, n, 1});
  cutlass::KernelHardwareInfo hw_info{device, sms};
  typename Gemm::Arguments args{
      cutlass::gemm::GemmUniversalMode::kGemm,
      {m, n, k, 1},
      {reinterpret_cast<const Element*>(a), stride_a, reinterpret_cast<const Element*>(b), stride_b},
      {{1.0f, 0.0f}, nullptr, stride_d, reinterpret_cast<Element*>(c), stride_d},
      hw_info};
  Gemm gemm;
  if (gemm.can_implement(args) != cutlass::Status::kSuccess) return cudaErrorInvalidValue;
  if (Gemm::get_workspace_size(args) != 0) return cudaErrorInvalidConfiguration;  // none for plain kGemm
  if (gemm.initialize(args, nullptr, stream) != cutlass::Status::kSuccess) return cudaErrorInvalidConfiguration;
  if (gemm.run(stream) != cutlass::Status::kSuccess) {
    err = cudaGetLastError();
    return err == cudaSuccess ? cudaErrorLaunchFailure : err;
  }
  return cudaGetLastError();
}
