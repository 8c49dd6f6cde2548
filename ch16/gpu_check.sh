#!/usr/bin/env bash
# The inference engine and Chapter 16 on a GPU node, in one go (at most BUDGET_S = 360 s: see below), from the
# repository root:
#
#   OUT=/some/dir [BUDGET_S=600] bash ch16/gpu_check.sh [--size full|small|tiny]
#
# 1. the engine's and ch16's CPU tests (the transformers logits test runs here: transformers is installed);
# 2. the engine's step time (decode at batch 1 and 32, eager and from CUDA graphs; prefill) with torch.profiler's
#    tables, and, where git history is present, the same for the engine before the per-step rework (ENGINE_BEFORE);
# 3. logits vs transformers' LlamaForCausalLM at the 1B config on the GPU (fp32: the exact check; bf16: rounding);
# 4. the engine (eager, and with CUDA-graph decode steps) against a contiguous cache and full recomputation at 1B
#    on the GPU (greedy and sampled);
# 5. the serving comparisons at --size (full: 1B in bf16, eager engine): static vs continuous batching, contiguous
#    vs paged KV at one memory budget, prefix cache off vs on (each point cut at 12 s);
# 6. the harness examples (MoE layer, FP8 linear) and the MoE profile; the FP8 engine at 8B (bf16 vs e4m3:
#    step times, top-1 agreement, logit error); the decode step eager vs CUDA graph vs torch.compile at 1B,
#    batch 32 (one compile; the step_time rows show batch 1).
# Writes to $OUT (default ./gpu_check_out): summary.txt, step_time_{after,before}.json, step_time_profile.txt,
# hf_logits_1b.json, engine_check_1b.json, batching.{json,png}, kv_paging.json, prefix_cache_ttft.json,
# results.json + summary.md (harness), moe_profile.{json,txt}, fp8_inference.json, decode_graphs.json.
# Never stops at the first failure; exits 1 if anything failed (a missed goal is not a failure: it is in the
# JSON and printed as MISSED).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option "$@"
CONFIG=1b FP8_SIZE=full
[ "$SIZE" = full ] || CONFIG=$( [ "$SIZE" = small ] && echo small || echo tiny )
[ "$SIZE" = full ] || FP8_SIZE=$( [ "$SIZE" = small ] && echo small || echo tiny )
ENGINE_BEFORE=ed6d5bb  # main before the engine's per-step rework (per-sequence prefill SDPA, per-layer masks)
STEP_ARGS=(--config "$CONFIG" --device cuda --batch 1,32 --context 512 --steps 20 --graphs)
[ "$SIZE" = tiny ] && STEP_ARGS=(--config tiny --device cuda --batch 1,8 --context 32 --steps 10 --graphs)

# The whole script keeps to BUDGET_S seconds (default 360): each step's timeout is cut to what is left, and a step
# that would get less than 20 s is skipped (listed, not failed). Steps run most important first.
BUDGET_S=${BUDGET_S:-360}
step env "$PY" -c 'import torch, transformers; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), "transformers", transformers.__version__)'
timed tests 90 "$PY" -m pytest -q tests/test_inference_hf.py tests/test_inference_engine.py tests/test_ch16_examples.py
timed step_time 60 "$PY" -m inference.step_time "${STEP_ARGS[@]}" --json "$OUT/step_time_after.json" \
    --profile "$OUT/step_time_profile.txt"
timed hf_logits 60 "$PY" -m inference.hf_compat --config "$CONFIG" --device cuda --dtype float32,bfloat16 \
    --seq 256 --json "$OUT/hf_logits_${CONFIG}.json"
timed engine_check 60 "$PY" -m inference.check --config "$CONFIG" --device cuda --json "$OUT/engine_check_${CONFIG}.json"
timed batching 110 "$PY" -m ch16.batching --size "$SIZE" --device cuda --deadline 12 --json "$OUT/batching.json" \
    --plot "$OUT/batching.png"
timed fp8_inference 90 "$PY" -m ch16.fp8_inference --size "$FP8_SIZE" --device cuda --json "$OUT/fp8_inference.json"
timed harness 60 "$PY" -m harness run ch16/moe_layer ch16/fp8_linear --device cuda --size "$SIZE" --out "$TMP/results"
[ -f "$TMP/results/results.json" ] && cp "$TMP/results/results.json" "$OUT/results.json"
[ -f "$TMP/results/summary.md" ] && cp "$TMP/results/summary.md" "$OUT/summary.md"
timed decode_graphs 90 "$PY" -m ch16.decode_graphs --size "$SIZE" --device cuda --batch 32 --json "$OUT/decode_graphs.json"
timed moe_profile 30 "$PY" -m ch16.moe_profile --size "$SIZE" --device cuda --json "$OUT/moe_profile.json" \
    --table "$OUT/moe_profile.txt"
timed kv_paging 45 "$PY" -m ch16.kv_paging --size "$SIZE" --device cuda --deadline 12 --json "$OUT/kv_paging.json"
timed prefix_cache 45 "$PY" -m ch16.prefix_cache_ttft --size "$SIZE" --device cuda --deadline 12 \
    --json "$OUT/prefix_cache_ttft.json"
if git cat-file -e "$ENGINE_BEFORE^{commit}" 2>/dev/null; then  # the same timer on the engine as it was
    mkdir -p "$TMP/before" && git archive "$ENGINE_BEFORE" inference | tar -x -C "$TMP/before" \
        && cp inference/step_time.py "$TMP/before/inference/"
    OUT_ABS=$(cd "$OUT" && pwd) PY_ABS=$(command -v "$PY" || echo "$PWD/$PY")
    timed step_time_before 60 bash -c "cd '$TMP/before' && PYTHONPATH='$TMP/before:$PWD' '$PY_ABS' -m inference.step_time \
        ${STEP_ARGS[*]/--graphs/} --json '$OUT_ABS/step_time_before.json'"
else
    echo "=== step_time_before: skipped (no git history of $ENGINE_BEFORE here)" | tee -a "$LOG"
fi

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}; ${#skipped[@]} skipped for time${skipped:+: ${skipped[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
