#!/usr/bin/env bash
# Chapter 9 on a GPU node, in one go (about 3-4 minutes on an H200), from the repository root:
#
#   OUT=/some/dir bash ch9/gpu_check.sh [--size full|small|tiny]
#
# 1. builds the ch9 kernels; 2. runs every ch9 example through the harness (fallback: each file directly);
# 3. the GEMM size sweep (ch9/gemm_sweep.py: our kernels vs cuBLAS at 1024..8192); 4. the SASS of the
# inline-PTX kernels and the GEMMs' FFMA/HMMA counts (ch9/show_sass.sh); 5. the ch9 tests, GPU ones included.
# Writes to $OUT (default ./gpu_check_out): summary.txt, results.json, summary.md, gemm_sweep.json, sass.txt.
# Never stops at the first failure; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option "$@"

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
step build "$PY" scripts/build_extensions.py ch9

step harness "$PY" -m harness run ch9 --device cuda --size "$SIZE" --out "$TMP/results" --timeout 300
if [ -f "$TMP/results/results.json" ]; then
    cp "$TMP/results/results.json" "$OUT/results.json"
    [ -f "$TMP/results/summary.md" ] && cp "$TMP/results/summary.md" "$OUT/summary.md"
else  # the harness CLI changed shape: run each example in its own process, directly
    for f in ch9/sgemm_tiling.py ch9/wmma_gemm.py ch9/fused_l2norm.py ch9/fused_bias_gelu_residual.py \
             ch9/inline_ptx_loads.py; do
        step "direct:$f" timeout 300 "$PY" "$f" --size "$SIZE"
    done
fi

SWEEP_SIZES="1024 2048 4096 8192"
[ "$SIZE" = full ] || SWEEP_SIZES="256 1024"
step gemm_sweep timeout 300 "$PY" -m ch9.gemm_sweep --out "$OUT/gemm_sweep.json" --sizes $SWEEP_SIZES
step sass bash -c "ch9/show_sass.sh sm_90 > '$OUT/sass.txt' 2>&1; rc=\$?; head -40 '$OUT/sass.txt'; exit \$rc"
step tests timeout 300 "$PY" -m pytest -q tests/test_ch9.py tests/test_cuda_compile.py -k ch9

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
