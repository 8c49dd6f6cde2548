#!/usr/bin/env bash
# Device call 3 (2 GPUs as two single-GPU lanes): lane 0: Chapter 20 at KernelBench sizes (the whole-check bound),
# the examples that failed on a verifier rule (ch9, ch14, ch5), ncu on ch9's fused kernels, ch13's FP8 training;
# lane 1: the first GPU runs of Chapters 15 and 17.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD AISP_GIT_SHA=${SHA:?}
T0=$SECONDS; BUDGET=${BUDGET:-578}
left() { echo $(( BUDGET - (SECONDS - T0) )); }
L=$OUT/log.txt
{ date -u +%FT%TZ; git log -1 --format=%h 2>/dev/null; grep -c ROUND_LOCK ch20/judge.py; nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,temperature.gpu,power.draw --format=csv; nproc; uptime; } > $OUT/env.txt 2>&1
mkdir -p /tmp/c
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl > /tmp/c/pip.txt 2>&1
lane0() {
    export CUDA_VISIBLE_DEVICES=0
    python3 scripts/build_extensions.py ch9 ch5 --jobs 2 > /tmp/c/build.txt 2>&1; echo "lane0 build rc=$? left=$(left)" >> $L
    mkdir -p /tmp/c/kb
    OUT=/tmp/c/kb timeout -k 10 200 bash ch20/runs/kernelbench_scale.sh > /tmp/c/kb.txt 2>&1
    echo "lane0 kernelbench rc=$? left=$(left)" >> $L
    PYTHONPATH=$PWD:/tmp/site timeout -s INT -k 15 150 python3 -m harness run ch9/fused_bias_gelu_residual.py ch9/fused_l2norm.py \
        ch14/fp8_matmul.py ch14/fused_softmax.py ch5/gds_read.py ch5/gpu_decode.py \
        --device cuda --strict --record --max-time 1 --timeout 120 --out /tmp/c/rerun > /tmp/c/rerun.txt 2>&1
    echo "lane0 reruns rc=$? left=$(left)" >> $L
    timeout -k 10 70 python3 -m profiling ch9/fused_l2norm.py ch9/fused_bias_gelu_residual.py --profile ncu --variant optimized \
        --output-root /tmp/c/ncu9 > /tmp/c/ncu9.txt 2>&1; echo "lane0 ncu ch9 rc=$? left=$(left)" >> $L
    local t=$(( $(left) - 15 ))
    mkdir -p /tmp/c/fp8
    [ $t -gt 60 ] && { timeout -k 10 $t python3 -m ch13.fp8_training --size full --steps 150 --out /tmp/c/fp8 > /tmp/c/fp8.txt 2>&1; echo "lane0 fp8_training rc=$? left=$(left)" >> $L; }
}
lane1() {
    export CUDA_VISIBLE_DEVICES=1
    mkdir -p /tmp/c/ch15 /tmp/c/ch17
    OUT=/tmp/c/ch15 timeout -k 10 250 bash ch15/gpu_check.sh > /tmp/c/ch15.txt 2>&1
    echo "lane1 ch15 rc=$? left=$(left)" >> $L
    local t=$(( $(left) - 15 ))
    [ $t -gt 60 ] && { OUT=/tmp/c/ch17 timeout -k 10 $t bash ch17/gpu_check.sh > /tmp/c/ch17.txt 2>&1; echo "lane1 ch17 rc=$? left=$(left)" >> $L; }
}
lane0 & lane1 & wait
tar czf $OUT/c.tgz -C /tmp --exclude='*.json.gz' --exclude='*trace*.json' --exclude='*.ncu-rep' --exclude='*.pickle' c
tar czf $OUT/exp.tgz ch*/expectations
cat $L; ls -la $OUT; du -sh /tmp/c
