#!/usr/bin/env bash
# Device call 6 of 2026-11-30 (one H200): the L2-norm kernel that holds a row in a 128-thread block's registers
# (the warp version ran at 11% occupancy), recorded, and its ncu sections at full size.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD AISP_GIT_SHA=${SHA:?}
timeout 120 python3 -m harness run ch9/fused_l2norm --device cuda --strict --record --max-time 1 --timeout 110 \
    --out /tmp/r > $OUT/harness.txt 2>&1; echo "harness rc=$?" >> $OUT/log.txt
cp /tmp/r/summary.md $OUT/summary.md 2>/dev/null; cp ch9/expectations/h200.json $OUT/h200.json
timeout 80 python3 -m profiling ch9/fused_l2norm.py --profile ncu --variant fused_row_in_registers --size full \
    --output-root /tmp/ncu9 > $OUT/ncu9.txt 2>&1; echo "ncu rc=$?" >> $OUT/log.txt
find /tmp/ncu9 -name 'summary.md' -exec cp {} $OUT/ncu9_summary.md \;
cat $OUT/log.txt; grep -E 'ok \||fail' $OUT/harness.txt
