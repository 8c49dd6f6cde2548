#!/usr/bin/env bash
# Chapter 14's Triton examples on a GPU node (under 4 minutes on an H200), from the repository root:
#
#   OUT=/some/dir bash ch14/gpu_check.sh
#
# 1. runs every ch14 example through the harness at full size (GEMMs at 8192^3);
# 2. runs the two autotuned GEMMs again at small size (4096^3), the other end of the GEMM goal's range;
# 3. TRITON_PRINT_AUTOTUNING=1 makes the autotuner print every configuration's time and its pick: that
#    is the tuning sweep (grep "Triton autotuning" in summary.txt);
# 4. compiles every kernel for sm_90 as CI does (tests/test_ch14.py).
# Budget: 170 s + 60 s + the compile check; under 4 minutes.
# Writes to $OUT (default ./gpu_check_out): summary.txt, results_full.json, summary_full.md,
# results_small.json, summary_small.md. Never stops at the first failure; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
export TRITON_PRINT_AUTOTUNING=1
unset TRITON_INTERPRET

step env "$PY" -c 'import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__, torch.cuda.get_device_name())'

harness() {  # harness SIZE SECONDS EXAMPLES...: through the harness CLI; if its shape changed, each file directly
    local size=$1; shift
    local budget=$1; shift
    step "harness_$size" timeout "$budget" "$PY" -m harness run "$@" --device cuda --size "$size" --out "$TMP/$size" \
        --timeout 120
    [ -d "$TMP/$size/logs" ] && cat "$TMP/$size"/logs/*.log >>"$TMP/child_logs" 2>/dev/null
    if [ -f "$TMP/$size/results.json" ]; then
        cp "$TMP/$size/results.json" "$OUT/results_$size.json"
        [ -f "$TMP/$size/summary.md" ] && cp "$TMP/$size/summary.md" "$OUT/summary_$size.md"
    else
        for f in "$@"; do
            [ -f "$f" ] || f="$f.py"
            [ -f "$f" ] && step "direct_${size}:$f" timeout 60 "$PY" "$f" --size "$size"
        done
    fi
}

harness full 170 ch14
harness small 60 ch14/matmul_autotune ch14/fp8_matmul
step compile_sm90 "$PY" -m pytest -q tests/test_ch14.py -k compile

echo "=== autotuner picks:" | tee -a "$LOG"
# the children's output (autotuner prints) is in the harness's per-example logs; direct runs print to summary.txt
cat "$TMP/child_logs" "$LOG" 2>/dev/null | grep -a -B3 "best config" | tee -a "$LOG" || true
echo "=== files in $OUT: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$LOG"
if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu_check.sh: FAILED steps: ${failed[*]}" | tee -a "$LOG"
    exit 1
fi
echo "gpu_check.sh: every step passed" | tee -a "$LOG"
