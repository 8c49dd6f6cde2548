#!/usr/bin/env bash
# The examples whose edge-case input distributions the CPU cannot verify with their real kernels (CUDA kernels,
# compiled Triton, bf16, FP8), verified on a GPU node at `small` size (about 3 minutes on an H200), from the
# repository root:
#
#   OUT=/some/dir bash scripts/gpu_check_edges.sh [--size full|small|tiny]   (default here: small)
#
# 1. builds the ch6, ch8, ch9 and ch10 kernels; 2. runs the examples through the harness, which verifies every variant
# on every declared distribution (timing takes the first only, kept short with --max-time); 3. the edge tests.
# Writes to $OUT (default ./gpu_check_out): summary.txt, results.json, summary.md. Exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option --size "${2:-small}"
BUDGET_S=${BUDGET_S:-230}

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
timed build 120 "$PY" scripts/build_extensions.py ch6 ch8 ch9 ch10
timed harness 150 "$PY" -m harness run ch6/occupancy_block_size ch10/cluster_histogram ch8/warp_divergence ch9/fused_bias_gelu_residual \
    ch9/fused_l2norm ch13/adamw_step ch14/fused_softmax ch14/layernorm ch16/moe_layer ch16/fp8_linear \
    ch18/paged_decode --device cuda --size "$SIZE" --max-time 0.3 --out "$TMP/results" --timeout 120
[ -f "$TMP/results/results.json" ] && cp "$TMP/results/results.json" "$OUT/results.json"
[ -f "$TMP/results/summary.md" ] && cp "$TMP/results/summary.md" "$OUT/summary.md"
timed tests 60 "$PY" -m pytest -q tests/test_edge_distributions.py

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}${skipped:+; skipped: ${skipped[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
