#!/usr/bin/env bash
# The persistent megakernel example on a GPU node (an H200: about 2 minutes once ch10 is built; a cold build
# of ch10's extension, five .cu files compiled in parallel, adds 1-2 minutes), from the repository root:
#
#   OUT=/some/dir bash ch10/gpu_check_megakernel.sh [--size full|small|tiny]
#
# 1. builds the ch10 kernels and records ptxas's register/spill report for megakernel.cu (ptxas_megakernel.txt);
# 2. ch10/megakernel_check.py: each kernel in its own process with a deadline (a persistent kernel written wrong
#    hangs or traps), checked against PyTorch on small and ragged shapes and every input distribution, then
#    timed at small and full size (megakernel_check.json);
# 3. ch10/persistent_megakernel.py through the harness at small, then at full size, --max-time 0.5
#    (results_small.json, summary_small.md, results.json, summary.md); 4. tests/test_ch10_megakernel.py, GPU
#    tests included.
# Every step has a timeout (BUDGET_S, default 300 s, bounds the whole script); all output goes to $OUT
# (default ./gpu_check_out), summary.txt the log. Never stops at the first failure; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option "$@"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
BUDGET_S=${BUDGET_S:-300}

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
timed build 240 "$PY" scripts/build_extensions.py ch10
NVCC=$("$PY" -c 'from harness.cuda_build import find_nvcc; print(find_nvcc() or "nvcc")' 2>/dev/null || echo nvcc)
timed ptxas 60 bash -c "'$NVCC' -c -O3 -std=c++17 --expt-relaxed-constexpr -I harness/include -arch=sm_90 -Xptxas -v \
    ch10/kernels/megakernel.cu -o '$TMP/megakernel.o' > '$OUT/ptxas_megakernel.txt' 2>&1; rc=\$?; \
    grep -E 'registers|spill' '$OUT/ptxas_megakernel.txt'; exit \$rc"

timed check 150 "$PY" -m ch10.megakernel_check --size "$SIZE" --json "$OUT/megakernel_check.json"

sizes=small
[ "$SIZE" = full ] && sizes="small full"
[ "$SIZE" = tiny ] && sizes=tiny
for s in $sizes; do
    # the harness's own deadline ends before the step's: a SIGTERM from `timeout` would leave its child running
    left=$(( BUDGET_S - SECONDS - 15 )); [ "$left" -gt 100 ] && left=100; [ "$left" -lt 20 ] && left=20
    timed "harness_$s" $(( left + 10 )) "$PY" -m harness run ch10/persistent_megakernel.py --device cuda \
        --size "$s" --out "$TMP/results_$s" --timeout "$left" --max-time 0.5
    suffix="_$s"; [ "$s" = "$SIZE" ] && suffix=""
    [ -f "$TMP/results_$s/results.json" ] && cp "$TMP/results_$s/results.json" "$OUT/results$suffix.json"
    [ -f "$TMP/results_$s/summary.md" ] && cp "$TMP/results_$s/summary.md" "$OUT/summary$suffix.md"
done
timed tests 120 "$PY" -m pytest -q tests/test_ch10_megakernel.py

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}${skipped:+; skipped: ${skipped[*]}}" \
    | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
