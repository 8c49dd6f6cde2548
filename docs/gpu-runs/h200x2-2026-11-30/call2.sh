#!/usr/bin/env bash
# Device call 2 of 2026-11-30 (2 x H200 as two single-GPU lanes). First, on both GPUs' behalf, the CUTLASS headers
# from .whl/ and one build of the ch9-ch12 extensions (two lanes building one extension at once would race).
#   lane 0: re-runs (recorded) of the examples whose call-1 timing read as a regression while the other GPU
#           worked, and of ch9's fused kernels (new variants); the FP8 GEMM check; then the new examples recorded;
#   lane 1: the CUTLASS GEMM check; the megakernel check; the stream-overlap trace (recorded); the HTA report.
# Run from the repository root with SHA=<git sha> OUT=<dir>; every step has a deadline inside BUDGET.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD AISP_GIT_SHA=${SHA:?}
T0=$SECONDS; BUDGET=${BUDGET:-560}
left() { echo $(( BUDGET - (SECONDS - T0) )); }
L=$OUT/log.txt
mkdir -p /tmp/c
{ date -u +%FT%TZ; nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,temperature.gpu,power.draw,utilization.gpu --format=csv;
  python3 -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'; nproc; uptime; } > $OUT/env.txt 2>&1
run_for() {  # run_for LABEL RESERVE CMD...: CMD with a deadline of what is left minus RESERVE seconds
    local label=$1 reserve=$2; shift 2
    local t=$(( $(left) - reserve )) s=$SECONDS
    [ $t -gt 40 ] || { echo "$label: skipped, $t s left" >> $L; return; }
    timeout -s INT -k 15 $t "$@" > /tmp/c/$label.txt 2>&1
    echo "$label rc=$? wall $((SECONDS - s)) s (deadline $t s) left=$(left)" >> $L
}
if ls .whl/nvidia_cutlass-*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/cutlass_site .whl/nvidia_cutlass-*.whl \
        >> $L 2>&1 && export PYTHONPATH=$PYTHONPATH:/tmp/cutlass_site
fi
run_for build 40 python3 scripts/build_extensions.py ch9 ch10 ch11 ch12
lane0() {
    export CUDA_VISIBLE_DEVICES=0
    run_for rerun 25 python3 -m harness run ch10/grid_sync_smoothing ch11/stream_ordered_allocator ch11/stream_priorities \
        ch12/graph_chain ch9/fused_l2norm ch9/fused_bias_gelu_residual --device cuda --strict --record --max-time 1 \
        --timeout 120 --out /tmp/c/rerun
    OUT=/tmp/c/fp8 BUDGET_S=$(( $(left) - 120 )) run_for fp8 110 bash ch10/gpu_check_fp8.sh
    run_for record_new 15 python3 -m harness run ch10/hopper_gemm_fp8 ch10/persistent_megakernel ch9/cutlass_gemm \
        --device cuda --strict --record --max-time 1 --timeout 100 --out /tmp/c/record_new
}
lane1() {
    export CUDA_VISIBLE_DEVICES=1
    OUT=/tmp/c/cutlass BUDGET_S=235 run_for cutlass 250 bash ch9/gpu_check_cutlass.sh
    OUT=/tmp/c/mega BUDGET_S=170 run_for mega 140 bash ch10/gpu_check_megakernel.sh
    mkdir -p /tmp/c/overlap
    run_for overlap 110 python3 -m ch11.overlap_trace --size full --sweep --out /tmp/c/overlap
    OUT=/tmp/c/hta BUDGET_S=$(( $(left) - 25 )) run_for hta 20 bash ch13/gpu_check_fp8_hta.sh --part hta
}
lane0 & lane1 & wait
tar czf $OUT/c.tgz -C /tmp --exclude='*.ncu-rep' --exclude='*.json.gz' --exclude='*.pt' --exclude='*.pickle' c
tar czf $OUT/results.tgz ch*/expectations
cat $L; ls -la $OUT
