#!/usr/bin/env bash
# Chapter 10 on a Hopper GPU node, in one go (about 4 minutes on an H200, up to half of it the first build),
# from the repository root:
#
#   OUT=/some/dir bash ch10/gpu_check.sh [--size full|small|tiny]
#
# 1. builds the ch10 kernels, and records ptxas's register/spill report for the GEMM (ptxas.txt);
# 2. the GEMM check and sweep (ch10/gemm_sweep.py): each kernel in its own process with a deadline, checked
#    against cuBLAS on small and ragged shapes, then timed at 4096^3 and 8192^3 (gemm_sweep.json, gemm_sweep.png);
# 3. every ch10 example through the harness; the GEMM example is left out if a GEMM kernel hung in step 2
#    (a hang would eat the whole time budget); ncu sections for one call of each GEMM that passed, and of
#    cuBLAS, at 4096^3 (ncu.txt); 4. the ch10 tests, GPU ones included.
# Writes to $OUT (default ./gpu_check_out): summary.txt, results.json, summary.md, gemm_sweep.json/png, ptxas.txt,
# ncu.txt.
# Never stops at the first failure; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option "$@"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
step build timeout 400 "$PY" scripts/build_extensions.py ch10
NVCC=$("$PY" -c 'from harness.cuda_build import find_nvcc; print(find_nvcc() or "nvcc")' 2>/dev/null || echo nvcc)
step ptxas bash -c "'$NVCC' -c -O3 -std=c++17 --expt-relaxed-constexpr -I harness/include -arch=sm_90a -Xptxas -v \
    ch10/kernels/hopper_gemm.cu -o '$TMP/hopper_gemm.o' > '$OUT/ptxas.txt' 2>&1; rc=\$?; \
    grep -E 'registers|spill|Performance|warning' '$OUT/ptxas.txt'; exit \$rc"

step gemm_sweep timeout 420 "$PY" -m ch10.gemm_sweep --size "$SIZE" --json "$OUT/gemm_sweep.json" \
    --png "$OUT/gemm_sweep.png"
# ncu on one call of each GEMM that passed its checks, and of cuBLAS: SOL, pipe use, warp stall reasons
correct=$("$PY" -c "import json; print(' '.join(r['kernel'] for r in json.load(open('$OUT/gemm_sweep.json'))['results'] if r.get('correct')))" 2>/dev/null)
ncu_size=4096; [ "$SIZE" = full ] || ncu_size=1024
if [ -n "$correct" ] && command -v ncu >/dev/null; then
    step ncu bash -c "timeout 150 ncu --kernel-name regex:'gemm|nvjet|xmma' --section SpeedOfLight \
        --section ComputeWorkloadAnalysis --section WarpStateStats \
        '$PY' -m ch10.gemm_sweep --profile --sizes $ncu_size --kernels $correct > '$OUT/ncu.txt' 2>&1; rc=\$?; \
        grep -E '^  [^ ]|Compute \(SM\) Throughput|Memory Throughput|Duration' '$OUT/ncu.txt' | head -40; exit \$rc"
fi
examples="ch10/hopper_gemm.py ch10/cluster_histogram.py ch10/grid_sync_smoothing.py"
if grep -q '"error": "hung' "$OUT/gemm_sweep.json" 2>/dev/null; then
    echo "=== a GEMM kernel hung: the harness runs leave out ch10/hopper_gemm.py" | tee -a "$LOG"
    examples="ch10/cluster_histogram.py ch10/grid_sync_smoothing.py"
fi
step harness "$PY" -m harness run $examples --device cuda --size "$SIZE" --out "$TMP/results" --timeout 150 \
    --max-time 1
[ -f "$TMP/results/results.json" ] && cp "$TMP/results/results.json" "$OUT/results.json"
[ -f "$TMP/results/summary.md" ] && cp "$TMP/results/summary.md" "$OUT/summary.md"
step tests timeout 300 "$PY" -m pytest -q tests/test_ch10.py

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
