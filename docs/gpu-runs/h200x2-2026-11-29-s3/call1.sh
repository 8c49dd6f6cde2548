#!/usr/bin/env bash
# Device call 1 (session 3; 2 GPUs as two single-GPU lanes): lane 0 times `python -m profiling ch7 --profile all`;
# lane 1 runs ./run_all_tests.sh on ch9 ch10 (record), then ch11 ch12 (record), then ch13 ch14 if time is left.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD AISP_GIT_SHA=${SHA:?}
T0=$SECONDS; BUDGET=${BUDGET:-575}
left() { echo $(( BUDGET - (SECONDS - T0) )); }
L=$OUT/log.txt
{ date -u +%FT%TZ; nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,temperature.gpu,power.draw,utilization.gpu --format=csv;
  python3 -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'; nproc; uptime; } > $OUT/env.txt 2>&1
mkdir -p /tmp/c
lane0() {
    export CUDA_VISIBLE_DEVICES=0
    local s=$SECONDS
    timeout -s INT -k 10 $(( $(left) - 12 )) python3 -m profiling ch7 --profile all --output-root /tmp/c/prof > /tmp/c/prof.txt 2>&1
    echo "lane0 profiling ch7 --profile all rc=$? wall $((SECONDS - s)) s left=$(left)" >> $L
}
lane1() {
    export CUDA_VISIBLE_DEVICES=1
    local t
    t=$(( $(left) - 20 )); echo "lane1 ch9 ch10 ($t s)" >> $L
    timeout -s INT -k 15 $t ./run_all_tests.sh ch9 ch10 --record --max-time 1 --timeout 150 > /tmp/c/r910.txt 2>&1
    echo "lane1 ch9 ch10 rc=$? left=$(left)" >> $L
    t=$(( $(left) - 20 )); [ $t -gt 60 ] || return
    timeout -s INT -k 15 $t ./run_all_tests.sh ch11 ch12 --record --max-time 1 --timeout 120 > /tmp/c/r1112.txt 2>&1
    echo "lane1 ch11 ch12 rc=$? left=$(left)" >> $L
    t=$(( $(left) - 20 )); [ $t -gt 60 ] || return
    timeout -s INT -k 15 $t ./run_all_tests.sh ch13 ch14 --record --max-time 1 --timeout 150 > /tmp/c/r1314.txt 2>&1
    echo "lane1 ch13 ch14 rc=$? left=$(left)" >> $L
}
lane0 & lane1 & wait
find /tmp/c/prof -name 'summary.*' -o -name 'status.json' | head -3 >> $L
tar czf $OUT/c.tgz -C /tmp --exclude='*.ncu-rep' --exclude='*.json.gz' --exclude='*trace*' --exclude='*.qdstrm' --exclude='*.nsys-rep' c
cp -r results $OUT/results 2>/dev/null; tar czf $OUT/results.tgz results ch*/expectations; rm -rf $OUT/results
cat $L; ls -la $OUT; du -sh /tmp/c
