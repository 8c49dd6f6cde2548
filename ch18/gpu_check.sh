#!/usr/bin/env bash
# Chapter 18 on a GPU node, in one go (about 5 minutes on an H200; BUDGET_S, 300 s unless given, bounds the whole:
# each step's timeout is cut to what is left, and steps past it are listed as skipped), from the repository root:
#
#   OUT=/some/dir bash ch18/gpu_check.sh [--size full|small|tiny]
#
# 1. the harness examples (paged_decode: gather + SDPA vs the Triton paged kernel vs compiled flex over a
#    block-table BlockMask; mla_decode: naive decompress vs absorbed torch vs the Triton MLA kernel);
# 2. flex_masks: compiled/eager flex vs SDPA flash / dense-masked per mask, TFLOP/s of the unmasked work, a plot;
# 3. kv_page_sweep: page sizes 8..256, utilization vs decode attention time vs the engine at 1B, a plot;
# 4. slo_admission: goodput vs offered load with and without admission control (1B engine), a plot;
# 5. the ch18 tests.
# Writes to $OUT (default ./gpu_check_out): summary.txt, results.json, summary.md, flex_masks.{json,png},
# kv_page_sweep.{json,png}, slo_admission.{json,png}. Never stops at the first failure; exits 1 if anything
# failed (a missed goal is not a failure: it is in the JSON and printed as MISSED).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
BUDGET_S=${BUDGET_S:-300}   # the whole script's seconds; each step's timeout is cut to what is left
size_option "$@"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

step env "$PY" -c 'import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__, torch.cuda.get_device_name())'

step harness "$PY" -m harness run ch18 --device cuda --size "$SIZE" --out "$TMP/results" --timeout 150
if [ -f "$TMP/results/results.json" ]; then
    cp "$TMP/results/results.json" "$OUT/results.json"
    [ -f "$TMP/results/summary.md" ] && cp "$TMP/results/summary.md" "$OUT/summary.md"
else  # the harness CLI changed shape: run each example in its own process, directly
    for f in ch18/paged_decode.py ch18/mla_decode.py; do
        step "direct:$f" timeout 150 "$PY" "$f" --size "$SIZE"
    done
fi

timed flex_masks 150 "$PY" -m ch18.flex_masks --size "$SIZE" --device cuda --time-per-impl 0.3 \
    --json "$OUT/flex_masks.json" --plot "$OUT/flex_masks.png"
timed kv_page_sweep 100 "$PY" -m ch18.kv_page_sweep --size "$SIZE" --device cuda --time-per-impl 0.3 \
    --json "$OUT/kv_page_sweep.json" --plot "$OUT/kv_page_sweep.png"
timed slo_admission 100 "$PY" -m ch18.slo_admission --size "$SIZE" --device cuda --deadline 15 \
    --json "$OUT/slo_admission.json" --plot "$OUT/slo_admission.png"
timed tests 90 "$PY" -m pytest -q tests/test_ch18.py

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}; ${#skipped[@]} skipped for time${skipped:+: ${skipped[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
