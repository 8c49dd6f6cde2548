// aisp: include cutlass
// aisp: ci-archs sm_80
// A CUTLASS 2.x bf16 GEMM, the Ampere design: C[M, N] = A[M, K] @ B[N, K]^T, both operands K-major,
// fp32 accumulation, bf16 C. `cutlass::gemm::device::Gemm` with a 128x256x64 block tile, eight 64x64 warp
// tiles, mma.sync m16n8k16 (the warp-wide tensor-core instruction of sm_80, which sm_90 still runs) and a
// 3-stage cp.async ring in shared memory (147 KiB). It runs on sm_80 and later; on Hopper it leaves TMA,
// wgmma and warp specialization unused, which is what gemm_sm90.cu adds.
// CUTLASS's device asserts are function calls in the inner loops: off, as in any release build.
#ifndef NDEBUG
#define NDEBUG
#endif
#include "launchers.h"

#include "cutlass/cutlass.h"
#include "cutlass/gemm/device/gemm.h"

namespace {

using Element = cutlass::bfloat16_t;
constexpr int kAlignment = 8;  // 16-byte cp.async loads and stores
using Epilogue = cutlass::epilogue::thread::LinearCombination<
    Element, kAlignment, float, float,
    cutlass::epilogue::thread::ScaleType::OnlyAlphaScaling>;  // D = alpha * acc: C is never read
using Gemm = cutlass::gemm::device::Gemm<
    Element, cutlass::layout::RowMajor,     // A [M, K]
    Element, cutlass::layout::ColumnMajor,  // B stored [N, K]
    Element, cutlass::layout::RowMajor,     // C [M, N]
    float, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    cutlass::gemm::GemmShape<128, 256, 64>, cutlass::gemm::GemmShape<64, 64, 64>,
    cutlass::gemm::GemmShape<16, 8, 16>, Epilogue,
    cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<8>,  // 8-tile groups: operands reused from L2
    3>;

}  // namespace

extern "C" cudaError_t launch_cutlass_gemm_sm80(const uint16_t* a, const uint16_t* b, uint16_t* c, int m, int n,
                                                int k, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  int device = 0, major = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (err != cudaSuccess) return err;
  if (major < 8) return cudaErrorNotSupported;  // bf16 mma.sync and cp.async need sm_80
  if (k % kAlignment != 0 || n % kAlignment != 0) return cudaErrorInvalidValue;

  auto* d = reinterpret_cast<Element*>(c);
  typename Gemm::Arguments args({m, n, k}, {reinterpret_cast<const Element*>(a), k},
                                {reinterpret_cast<const Element*>(b), k}, {d, n}, {d, n}, {1.0f, 0.0f});
  Gemm gemm;
  if (gemm.can_implement(args) != cutlass::Status::kSuccess) return cudaErrorInvalidValue;
  if (Gemm::get_workspace_size(args) != 0) return cudaErrorInvalidConfiguration;  // split-K 1: none
  if (gemm.initialize(args, nullptr, stream) != cutlass::Status::kSuccess) return cudaErrorInvalidConfiguration;
  if (gemm(stream) != cutlass::Status::kSuccess) {
    err = cudaGetLastError();
    return err == cudaSuccess ? cudaErrorLaunchFailure : err;
  }
  return cudaGetLastError();
}
