#!/usr/bin/env bash
# Device call 3 of 2026-11-30 (2 x H200 as two single-GPU lanes):
#   lane 0: FP8 training eager (bf16, ours and torchao's, tensorwise and rowwise; 150 steps); the profiled
#           training step and its HTA report again (the report now carries provenance and rows), after which
#           CUTLASS kernel and shape crashed the edge test;
#   lane 1: FP8 training with each block compiled (the five runs, 100 steps); then the unseen KernelBench-format
#           problems on CUDA at the verifier's default rounds.
# Run from the repository root with SHA=<git sha> OUT=<dir>; every step has a deadline inside BUDGET.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD AISP_GIT_SHA=${SHA:?}
T0=$SECONDS; BUDGET=${BUDGET:-570}
left() { echo $(( BUDGET - (SECONDS - T0) )); }
L=$OUT/log.txt
mkdir -p /tmp/c
{ date -u +%FT%TZ; nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,temperature.gpu,power.draw,utilization.gpu --format=csv; nproc; uptime; } > $OUT/env.txt 2>&1
run_for() {  # run_for LABEL RESERVE CMD...: CMD with a deadline of what is left minus RESERVE seconds
    local label=$1 reserve=$2; shift 2
    local t=$(( $(left) - reserve )) s=$SECONDS
    [ $t -gt 30 ] || { echo "$label: skipped, $t s left" >> $L; return; }
    timeout -s INT -k 15 $t "$@" > /tmp/c/$label.txt 2>&1
    echo "$label rc=$? wall $((SECONDS - s)) s (deadline $t s) left=$(left)" >> $L
}
if ls .whl/nvidia_cutlass-*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/cutlass_site .whl/nvidia_cutlass-*.whl \
        >> $L 2>&1 && export PYTHONPATH=$PYTHONPATH:/tmp/cutlass_site
fi
lane0() {
    export CUDA_VISIBLE_DEVICES=0
    OUT=/tmp/c/fp8e BUDGET_S=290 run_for fp8e 240 bash ch13/gpu_check_fp8_hta.sh --part eager
    run_for build9 190 python3 scripts/build_extensions.py ch9
    run_for cutlass_diag 110 bash docs/gpu-runs/h200x2-2026-11-30/cutlass_edge_diag.sh
    OUT=/tmp/c/hta BUDGET_S=$(( $(left) - 20 )) run_for hta 15 bash ch13/gpu_check_fp8_hta.sh --part hta
}
lane1() {
    export CUDA_VISIBLE_DEVICES=1
    OUT=/tmp/c/fp8c BUDGET_S=$(( $(left) - 130 )) run_for fp8c 120 bash ch13/gpu_check_fp8_hta.sh --part compiled
    run_for unseen 15 python3 tests/ch20_unseen/unseen.py --device cuda --rounds 16 --json /tmp/c/unseen16.json
}
lane0 & lane1 & wait
tar czf $OUT/c.tgz -C /tmp --exclude='*.ncu-rep' --exclude='*.json.gz' --exclude='*.pt' --exclude='*.pickle' \
    --exclude='traces' c
cat $L; ls -la $OUT
