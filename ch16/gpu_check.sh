#!/usr/bin/env bash
# The inference engine and Chapter 16 on a GPU node, in one go (about 3 minutes on an H200), from the repository root:
#
#   OUT=/some/dir bash ch16/gpu_check.sh [--size full|small|tiny]
#
# 1. the engine's CPU tests (the transformers logits test runs here: transformers is installed on the GPU node);
# 2. logits vs transformers' LlamaForCausalLM at the 1B config on the GPU (fp32: the exact check; bf16: rounding);
# 3. the engine against a contiguous cache and full recomputation at 1B on the GPU (greedy and sampled);
# 4. the serving comparisons at --size (full: 1B in bf16): static vs continuous batching, contiguous vs paged KV
#    at one memory budget, prefix cache off vs on.
# Writes to $OUT (default ./gpu_check_out): summary.txt, hf_logits_1b.json, engine_check_1b.json,
# batching.{json,png}, kv_paging.json, prefix_cache_ttft.json. Never stops at the first failure; exits 1 if
# anything failed (a missed goal is not a failure: it is in the JSON and printed as MISSED).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option "$@"
CONFIG=1b
[ "$SIZE" = full ] || CONFIG=$( [ "$SIZE" = small ] && echo small || echo tiny )

step env "$PY" -c 'import torch, transformers; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), "transformers", transformers.__version__)'
step tests timeout 240 "$PY" -m pytest -q tests/test_inference_model.py tests/test_inference_hf.py \
    tests/test_inference_engine.py tests/test_inference_bench.py tests/test_inference_ch16.py
step hf_logits timeout 240 "$PY" -m inference.hf_compat --config "$CONFIG" --device cuda --dtype float32,bfloat16 \
    --seq 256 --json "$OUT/hf_logits_${CONFIG}.json"
step engine_check timeout 240 "$PY" -m inference.check --config "$CONFIG" --device cuda --json "$OUT/engine_check_${CONFIG}.json"
step batching timeout 300 "$PY" -m ch16.batching --size "$SIZE" --device cuda --json "$OUT/batching.json" --plot "$OUT/batching.png"
step kv_paging timeout 240 "$PY" -m ch16.kv_paging --size "$SIZE" --device cuda --json "$OUT/kv_paging.json"
step prefix_cache timeout 240 "$PY" -m ch16.prefix_cache_ttft --size "$SIZE" --device cuda --json "$OUT/prefix_cache_ttft.json"

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
