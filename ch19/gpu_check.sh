#!/usr/bin/env bash
# Chapter 19 on a GPU node, in one go (about 5 minutes expected on an H200; BUDGET_S, 300 s unless given, bounds
# the whole: each step's timeout is cut to what is left, and steps past it are listed as skipped), from the
# repository root:
#
#   OUT=/some/dir bash ch19/gpu_check.sh [--size full|small|tiny]
#
# 1. the ch19 tests (CPU tests; the Triton candidates run compiled here);
# 2. run-time kernel auto-tuning of the 1B decoder's matmul shapes, twice: the second process reads the cache;
# 3. the parallelism planner (7B on 8 GPUs, 70B on 64) and its memory model measured on this GPU at 125 M;
# 4. the OOM-surviving training step under a memory cap (a real CUDA OOM, retried at smaller micro-batches);
# 5. dynamic precision (bf16/FP8 decode by load) and token-level precision switching, at 1B;
# 6. adaptive batching (AIMD token budget vs a sweep of fixed budgets) and the UCB1 bandit over engine knobs, at 1B;
# 7. FP8 training vs bf16 at the 1b and 8b layer widths (eager).
# --size small/tiny run the serving parts at the 125 M / tiny config (faster; the figures are not the chapter's).
# Writes to $OUT (default ./gpu_check_out): summary.txt, *.json of each module, adaptive_batching.png,
# bandit_tuner.png, fp8_loss_*.png, planner_7B.md. Never stops at the first failure; exits 1 if anything failed
# (a missed goal is not a failure: it is in the JSON and printed as MISSED).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
BUDGET_S=${BUDGET_S:-300}   # the whole script's seconds; each step's timeout is cut to what is left
size_option "$@"
unset TRITON_INTERPRET
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
TRAIN=full
[ "$SIZE" = tiny ] && TRAIN=tiny
TRAIN_SIZE=full
[ "$SIZE" = full ] || TRAIN_SIZE=$SIZE

step env "$PY" -c 'import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__, torch.cuda.get_device_name())'
timed tests 120 "$PY" -m pytest -q tests/test_ch19.py
timed autotune_first 150 "$PY" -m ch19.kernel_autotune --size "$SIZE" --cache "$TMP/tuning.json" \
    --json "$OUT/kernel_autotune.json"
timed autotune_cached 60 "$PY" -m ch19.kernel_autotune --size "$SIZE" --cache "$TMP/tuning.json" \
    --json "$OUT/kernel_autotune_cached.json"
timed planner 90 bash -c "'$PY' -m ch19.parallelism_planner --model-size 7B --gpus 8 --check --json '$OUT/planner_7B.json' \
    | tee '$OUT/planner_7B.md'; exit \${PIPESTATUS[0]}"
timed planner_70B 30 "$PY" -m ch19.parallelism_planner --model-size 70B --gpus 64 --json "$OUT/planner_70B.json"
timed oom_retry 90 "$PY" -m ch19.oom_retry --size "$TRAIN_SIZE" --json "$OUT/oom_retry.json"
timed dynamic_precision 180 "$PY" -m ch19.dynamic_precision --size "$SIZE" --deadline 20 --json "$OUT/dynamic_precision.json"
timed token_precision 120 "$PY" -m ch19.token_precision --size "$SIZE" --json "$OUT/token_precision.json"
timed adaptive_batching 180 "$PY" -m ch19.adaptive_batching --size "$SIZE" --deadline 20 --json "$OUT/adaptive_batching.json" \
    --plot "$OUT/adaptive_batching.png"
timed bandit_tuner 180 "$PY" -m ch19.bandit_tuner --size "$SIZE" --deadline 60 --json "$OUT/bandit_tuner.json" \
    --plot "$OUT/bandit_tuner.png"
timed fp8_training 150 "$PY" -m ch19.fp8_training --size "$TRAIN" --steps 30 --json "$OUT/fp8_training.json" \
    --plot "$OUT/fp8_loss.png"

echo "=== files in $OUT: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$LOG"
echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}; ${#skipped[@]} skipped for time${skipped:+: ${skipped[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
