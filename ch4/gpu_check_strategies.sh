#!/usr/bin/env bash
# Chapter 4's parallelism strategies on a GPU node, in one go (about 2 minutes on 2 H200s, at most ~4 if runs
# fail and are re-run), from the repository root:
#
#   OUT=/some/dir bash ch4/gpu_check_strategies.sh [--size full|small|tiny]
#
# 1. DDP, FSDP2 (fp32 and bf16), TP and a pipeline on every visible GPU over NCCL, the 1-GPU baseline inside the
#    same run, DDP/FSDP traced on rank 0 (ch4/parallel_strategies.py; ~200M-parameter decoder, 8 x 1024 tokens per GPU);
#    a strategy that failed is run again on its own; 2. the memory model's table for the 8B config on these GPUs;
#    3. the CPU tests (gloo).
# Writes to $OUT (default ./gpu_check_out): strategies.json (+ strategies_<name>.json for re-runs), strategies.txt,
# overlap_timeline.png, traces/*.json.gz (rank 0's profiler traces), memory_model_8b.json, summary.txt.
# Never stops at the first failure; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option "$@"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.device_count(), torch.cuda.get_device_name())'
ngpu=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
if [ "${ngpu:-0}" -lt 1 ]; then
    echo "=== no CUDA GPU visible: nothing to measure" | tee -a "$LOG"
    exit 1
fi

step strategies timeout 160 "$PY" -m ch4.parallel_strategies --backend nccl --device cuda --world "$ngpu" --size "$SIZE" \
    --trace "$TMP/traces" --timeout 140 --verbose --json "$OUT/strategies.json"
[ -f "$OUT/strategies.json" ] && "$PY" -c 'import json,sys; from ch4.strategies_report import render
print(render(json.load(open(sys.argv[1]))))' "$OUT/strategies.json" > "$OUT/strategies.txt"
# A strategy that failed (and every one after it, which then did not run) gets a run of its own.
failed_strategies=$("$PY" -c 'import json,sys
try:
    rows = json.load(open(sys.argv[1]))["rows"]
except Exception:
    print("ddp fsdp fsdp_bf16 tp pp"); sys.exit()
print(" ".join(k for k, v in rows.items() if "error" in v and k != "single"))' "$OUT/strategies.json")
for s in $failed_strategies; do
    if [ "$SECONDS" -gt 120 ]; then echo "=== strategy_$s: not re-run, out of time" | tee -a "$LOG"; failed+=("strategy_$s"); continue; fi
    step "strategy_$s" timeout 70 "$PY" -m ch4.parallel_strategies --backend nccl --device cuda --world "$ngpu" \
        --size "$SIZE" --strategies "$s" --timeout 60 --verbose --json "$OUT/strategies_$s.json"
done
cp "$TMP/traces/overlap_timeline.png" "$OUT/" 2>/dev/null
mkdir -p "$OUT/traces"
for t in "$TMP"/traces/*_trace.json; do [ -f "$t" ] && gzip -c "$t" > "$OUT/traces/$(basename "$t").gz"; done

step memory_model "$PY" -m ch4.memory_model --config 8b --world "$ngpu" --batch 1 --seq 4096 --precision mixed \
    --json "$OUT/memory_model_8b.json"
step tests timeout 120 "$PY" -m pytest -q tests/test_ch4_strategies.py   # the gloo ones, and the NCCL one on 2+ GPUs

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
