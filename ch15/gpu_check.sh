#!/usr/bin/env bash
# Chapter 15 on a GPU node, in one go (at --size full, the 1B config, on one H200 the speculative sweep alone took
# 199 s; BUDGET_S, 300 s unless given, bounds the whole and cuts each step's timeout to what is left), from the
# repository root:
#
#   OUT=/some/dir bash ch15/gpu_check.sh [--size full|small|tiny]
#
# 1. the ch15 CPU tests; 2. speculative decoding: a 1B target and its 2-layer draft, k = 1..8 at up to five
# calibrated acceptance levels, plus the fp32 exactness check (~60-80 s); 3. colocated vs disaggregated prefill/decode (router, prefill
# and decode worker processes sharing the GPU, KV pages through CUDA IPC, every page verified bit for bit) on a
# mixed long-prompt/long-output load at two arrival rates (~90-120 s); 4. the MoE calculator's tables (instant).
# Writes to $OUT (default ./gpu_check_out): summary.txt, speculative.{json,png}, disaggregated.{json,png},
# moe_mixtral_8gpu.json, moe_deepseek_v3_16gpu.json. Never stops at the first failure; exits 1 if anything failed
# (a missed goal is not a failure: it is in the JSON and printed as MISSED).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
BUDGET_S=${BUDGET_S:-300}   # the whole script's seconds; each step's timeout is cut to what is left
size_option "$@"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), torch.cuda.device_count(), "GPU(s)")'
timed tests 120 "$PY" -m pytest -q tests/test_ch15.py
timed speculative 200 "$PY" -m ch15.speculative --size "$SIZE" --device cuda \
    --json "$OUT/speculative.json" --plot "$OUT/speculative.png"
# one GPU: both workers share cuda:0 (the multi-GPU run passes --devices cuda:0,cuda:1)
timed disaggregated 280 "$PY" -m ch15.disaggregated --size "$SIZE" --devices cuda:0 --verify-kv \
    --deadline 50 --json "$OUT/disaggregated.json" --plot "$OUT/disaggregated.png"
timed moe_mixtral 30 "$PY" -m ch15.moe_parallel --model mixtral-8x7b --gpus 8 --json "$OUT/moe_mixtral_8gpu.json"
timed moe_deepseek 30 "$PY" -m ch15.moe_parallel --model deepseek-v3 --gpus 16 --gpus-per-node 8 \
    --json "$OUT/moe_deepseek_v3_16gpu.json"

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}; ${#skipped[@]} skipped for time${skipped:+: ${skipped[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
