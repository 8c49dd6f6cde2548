"""The Chapter 10 GEMM on Blackwell (sm_100a): tcgen05 MMAs into Tensor Memory, one thread issuing them.

COMPILED, NEVER RUN. No Blackwell GPU was available to this project: these kernels compile for sm_100a
(CI builds them, and ptxas reports 48-58 registers, no spills), but they have never executed, so nothing here
is a measurement and no correctness is claimed beyond careful reading of the PTX ISA. Every variant requires
compute capability 10.0 exactly and is skipped elsewhere (the H200 included) with the reason
"tcgen05/TMEM: sm_100a only"; the launchers also refuse other GPUs before launching.

The same computation as `hopper_gemm.py`: C = A @ B.T with A [M, K] and B [N, K] in bf16 (both K-major),
fp32 accumulation, bf16 C; the same shapes, inputs and tolerances (imported from it). The kernels
(ch10/kernels/blackwell_gemm.cu) keep Hopper's 128 x 256 x 64 block tile, TMA loads and 128-byte swizzle;
what changes is where the accumulator lives and who drives the tensor core:
  - baseline `tcgen05_1stage`: one shared-memory stage; TMA and the tensor core take turns;
  - `tcgen05_4stage`: a 4-deep ring; a single thread issues tcgen05.mma (M = 128, N = 256, K = 16) into a
    128 x 256 fp32 accumulator in TMEM, and tcgen05.commit arrives on a stage's "empty" mbarrier when the
    MMAs that read it are done; 4 epilogue warps read TMEM with tcgen05.ld;
  - `tcgen05_persistent`: grid = #SMs looping over tiles with two TMEM accumulators (all 512 columns), so
    the epilogue of one tile overlaps the MMAs of the next.
cuBLAS (`a @ b.T` in torch) is the reference.

Bound on a B200: 2*8192^3 = 1.1 TFLOP at full size: 0.49 ms at the datasheet's 2250 TFLOP/s dense bf16
(harness/peaks.py; a lead, not a measurement); bytes, 384 MiB once each, 0.05 ms at 7.7 TB/s: compute-bound
by ~10x. The target is the book's figure for Blackwell (FP16/BF16 GEMM above 800 TFLOP/s: 1.37 ms here),
set for the B200 only in targets.toml.
"""
from ch10.hopper_gemm import flops, setup
from ch10.kernels import ext
from harness import Example, Requires, Variant, main

REASON = "tcgen05/TMEM: sm_100a only"


class Sm100a(Requires):
    """Compute capability exactly 10.0 (sm_100a code runs on no other GPU), skipped with the reason why."""

    def unmet(self, device):
        why = super().unmet(device)
        return f"{REASON}; {why}" if why else None


BLACKWELL = Sm100a(min_capability=(10, 0), max_capability=(10, 0))


def kernel(name):
    return lambda x: getattr(ext(), name)(x["a"], x["b"])


EXAMPLE = Example(
    title="Blackwell bf16 GEMM (compiled, never run): tcgen05 + TMEM, 1 stage, 4-stage ring, persistent, vs cuBLAS",
    setup=setup,
    baseline=Variant(kernel("gemm_tcgen05_1stage"), requires=BLACKWELL,
                     note="TMA + tcgen05.mma, one shared-memory stage: loads and math take turns"),
    baseline_name="tcgen05_1stage",
    optimized={
        "tcgen05_4stage": Variant(kernel("gemm_tcgen05_pipelined"), requires=BLACKWELL,
                                  note="4-stage ring; 1 TMA thread, 1 MMA thread, 4 epilogue warps reading TMEM"),
        "tcgen05_persistent": Variant(kernel("gemm_tcgen05_persistent"), requires=BLACKWELL,
                                      note="the same, grid = #SMs, two TMEM accumulators: epilogue overlaps MMAs"),
    },
    tolerance=(1.6e-2, 3e-2),
    references={"torch_matmul_bf16": Variant(lambda x: x["a"] @ x["b"].T, note="cuBLAS bf16 (TN)")},
    bytes_moved=lambda x: 2 * (x["a"].numel() + x["b"].numel() + x["a"].shape[0] * x["b"].shape[0]),
    flops=flops,
    flops_dtype="bf16",
    distributions=("aligned", "ragged"),
    requires=BLACKWELL,
)

if __name__ == "__main__":
    main(EXAMPLE)
