#!/usr/bin/env bash
# Device call 1 of 2026-11-30 (2 x H200 as two single-GPU lanes, each figure taken while the other GPU works):
#   lane 0: ./run_all_tests.sh ch9 ch10 ch11 ch12 --record, then the edge-distribution check (small);
#   lane 1: ./run_all_tests.sh ch13 ch14 --record, FP8 training with torch.compile (150 steps, ~1.1 B),
#           the unseen KernelBench-format problems through the Chapter 20 verifier on CUDA.
# Run from the repository root with SHA=<git sha> OUT=<dir>; every step has a deadline inside BUDGET.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD AISP_GIT_SHA=${SHA:?}
T0=$SECONDS; BUDGET=${BUDGET:-560}
left() { echo $(( BUDGET - (SECONDS - T0) )); }
L=$OUT/log.txt
{ date -u +%FT%TZ; nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,temperature.gpu,power.draw,utilization.gpu --format=csv;
  python3 -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'; nproc; uptime; } > $OUT/env.txt 2>&1
mkdir -p /tmp/c
run_for() {  # run_for LABEL RESERVE CMD...: run CMD with a deadline of what is left minus RESERVE seconds
    local label=$1 reserve=$2; shift 2
    local t=$(( $(left) - reserve )) s=$SECONDS
    [ $t -gt 40 ] || { echo "$label: skipped, $t s left" >> $L; return; }
    timeout -s INT -k 15 $t "$@" > /tmp/c/$label.txt 2>&1
    echo "$label rc=$? wall $((SECONDS - s)) s (deadline $t s) left=$(left)" >> $L
}
lane0() {
    export CUDA_VISIBLE_DEVICES=0
    run_for r9-12 25 ./run_all_tests.sh ch9 ch10 ch11 ch12 --record --max-time 1 --timeout 150
    OUT=/tmp/c/edges BUDGET_S=$(( $(left) - 25 )) run_for edges 20 bash scripts/gpu_check_edges.sh --size small
}
lane1() {
    export CUDA_VISIBLE_DEVICES=1
    run_for r13-14 25 ./run_all_tests.sh ch13 ch14 --record --max-time 1 --timeout 150
    run_for unseen 25 env OUT=/tmp/c/unseen bash tests/ch20_unseen/gpu_check.sh
    mkdir -p /tmp/c/fp8c
    run_for fp8c 20 python3 -m ch13.fp8_training --size full --steps 150 --compile --out /tmp/c/fp8c
}
lane0 & lane1 & wait
tar czf $OUT/c.tgz -C /tmp --exclude='*.ncu-rep' --exclude='*.json.gz' --exclude='*trace*' --exclude='*.pt' c
tar czf $OUT/results.tgz results ch*/expectations
cat $L; ls -la $OUT
