#!/usr/bin/env bash
# Device call 2 (2 GPUs as two single-GPU lanes): lane 0: Chapter 20 at KernelBench sizes, the re-runs of the
# examples call 1 could not record, then Chapters 2-5 (ch2/gpu_check.sh); lane 1: ch13/gpu_check.sh, both parts.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD AISP_GIT_SHA=${SHA:?}
T0=$SECONDS; BUDGET=${BUDGET:-578}
left() { echo $(( BUDGET - (SECONDS - T0) )); }
L=$OUT/log.txt
{ date -u +%FT%TZ; nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,temperature.gpu,power.draw,utilization.gpu --format=csv; nproc; uptime; } > $OUT/env.txt 2>&1
mkdir -p /tmp/c
lane0() {
    export CUDA_VISIBLE_DEVICES=0
    python3 scripts/build_extensions.py ch9 ch10 ch11 ch12 ch2 ch5 --jobs 6 > /tmp/c/build.txt 2>&1; echo "lane0 build rc=$? left=$(left)" >> $L
    mkdir -p /tmp/c/kb
    OUT=/tmp/c/kb timeout -k 10 200 bash ch20/runs/kernelbench_scale.sh > /tmp/c/kb.txt 2>&1
    echo "lane0 kernelbench rc=$? left=$(left)" >> $L
    timeout -s INT -k 15 $(( $(left) - 30 < 200 ? $(left) - 30 : 200 )) python3 -m harness run ch9/fused_bias_gelu_residual.py \
        ch9/fused_l2norm.py ch14/fp8_matmul.py ch14/fused_softmax.py ch12/conditional_while.py ch10/grid_sync_smoothing.py \
        ch11/stream_ordered_allocator.py --device cuda --strict --record --max-time 2 --timeout 150 --out /tmp/c/rerun > /tmp/c/rerun.txt 2>&1
    echo "lane0 reruns rc=$? left=$(left)" >> $L
    timeout -k 10 90 python3 -m profiling ch9/fused_l2norm.py ch9/fused_bias_gelu_residual.py --profile ncu --ncu-set full \
        --output-root /tmp/c/ncu9 > /tmp/c/ncu9.txt 2>&1; echo "lane0 ncu ch9 rc=$? left=$(left)" >> $L
    local t=$(( $(left) - 15 ))
    [ $t -gt 60 ] && { mkdir -p /tmp/c/ch2; OUT=/tmp/c/ch2 timeout -s INT -k 10 $t bash ch2/gpu_check.sh > /tmp/c/ch2.txt 2>&1; echo "lane0 ch2-5 rc=$? left=$(left)" >> $L; }
}
lane1() {
    export CUDA_VISIBLE_DEVICES=1
    mkdir -p /tmp/c/ch13
    OUT=/tmp/c/ch13 timeout -k 10 $(( $(left) - 15 )) bash ch13/gpu_check.sh --part ch13 > /tmp/c/ch13.txt 2>&1
    echo "lane1 ch13 rc=$? left=$(left)" >> $L
    local t=$(( $(left) - 15 ))
    mkdir -p /tmp/c/ch14
    [ $t -gt 60 ] && { OUT=/tmp/c/ch14 timeout -k 10 $t bash ch13/gpu_check.sh --part ch14 > /tmp/c/ch14.txt 2>&1; echo "lane1 ch14 rc=$? left=$(left)" >> $L; }
}
lane0 & lane1 & wait
tar czf $OUT/c.tgz -C /tmp --exclude='*.json.gz' --exclude='*trace*.json' --exclude='memory_snapshot.json' --exclude='*.pickle' --exclude='*.ncu-rep' c
tar czf $OUT/exp.tgz ch*/expectations
cat $L; ls -la $OUT; du -sh /tmp/c
