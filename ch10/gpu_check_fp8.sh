#!/usr/bin/env bash
# Chapter 10's FP8 GEMM on a Hopper GPU node, in one go (about 3-4 minutes on an H200, up to 2 of them the first
# build of the ch10 extension), from the repository root:
#
#   OUT=/some/dir bash ch10/gpu_check_fp8.sh [--size full|small|tiny]
#
# 1. builds the ch10 kernels, and records ptxas's register/spill report for hopper_gemm_fp8.cu (ptxas_fp8.txt);
# 2. the FP8 check and sweep (ch10/gemm_sweep_fp8.py): each kernel in its own process with a 90 s deadline,
#    checked against the exact result and torch._scaled_mm on small and ragged shapes first, then timed at
#    4096^3 and 8192^3 (gemm_sweep_fp8.json, gemm_sweep_fp8.png);
# 3. ch10/hopper_gemm_fp8.py through the harness with --max-time 0.5, left out if a kernel hung in step 2
#    (results_fp8.json, summary_fp8.md); 4. tests/test_ch10_fp8.py, GPU tests included unless a kernel hung;
# 5. with the time left (BUDGET_S, default 230 s), ncu sections for one call of each kernel that passed, and of
#    torch._scaled_mm, at 4096^3 (ncu_fp8.txt).
# Writes to $OUT (default ./gpu_check_out): summary.txt and the files above.
# Never stops at the first failure; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option "$@"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
BUDGET_S=${BUDGET_S:-230}

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
timed build 200 "$PY" scripts/build_extensions.py ch10
NVCC=$("$PY" -c 'from harness.cuda_build import find_nvcc; print(find_nvcc() or "nvcc")' 2>/dev/null || echo nvcc)
timed ptxas 60 bash -c "'$NVCC' -c -O3 -std=c++17 --expt-relaxed-constexpr -I harness/include -arch=sm_90a -Xptxas -v \
    ch10/kernels/hopper_gemm_fp8.cu -o '$TMP/hopper_gemm_fp8.o' > '$OUT/ptxas_fp8.txt' 2>&1; rc=\$?; \
    grep -E 'registers|spill|Performance|warning|error' '$OUT/ptxas_fp8.txt'; exit \$rc"

timed gemm_sweep_fp8 300 "$PY" -m ch10.gemm_sweep_fp8 --size "$SIZE" --json "$OUT/gemm_sweep_fp8.json" \
    --png "$OUT/gemm_sweep_fp8.png"
correct=$("$PY" -c "import json; print(' '.join(r['kernel'] for r in json.load(open('$OUT/gemm_sweep_fp8.json'))['results'] if r.get('correct')))" 2>/dev/null)
test_filter=()
if grep -q '"error": "hung' "$OUT/gemm_sweep_fp8.json" 2>/dev/null; then
    echo "=== an FP8 kernel hung: the harness run and the GPU tests are left out" | tee -a "$LOG"
    failed+=(hung)
    test_filter=(-m "not gpu")
else
    timed harness 150 "$PY" -m harness run ch10/hopper_gemm_fp8.py --device cuda --size "$SIZE" --out "$TMP/results" \
        --timeout 140 --max-time 0.5
    [ -f "$TMP/results/results.json" ] && cp "$TMP/results/results.json" "$OUT/results_fp8.json"
    [ -f "$TMP/results/summary.md" ] && cp "$TMP/results/summary.md" "$OUT/summary_fp8.md"
fi
timed tests 90 "$PY" -m pytest -q -p no:cacheprovider "${test_filter[@]}" tests/test_ch10_fp8.py

ncu_size=4096; [ "$SIZE" = full ] || ncu_size=1024
if [ -n "$correct" ] && command -v ncu >/dev/null; then
    timed ncu 90 bash -c "ncu --kernel-name regex:'gemm|nvjet|xmma|sm90' --section SpeedOfLight \
        --section ComputeWorkloadAnalysis --section WarpStateStats \
        '$PY' -m ch10.gemm_sweep_fp8 --profile --sizes $ncu_size --kernels $correct > '$OUT/ncu_fp8.txt' 2>&1; rc=\$?; \
        grep -E '^  [^ ]|Compute \(SM\) Throughput|Memory Throughput|Duration' '$OUT/ncu_fp8.txt' | head -40; exit \$rc"
fi

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}; skipped: ${skipped[*]:-none}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
