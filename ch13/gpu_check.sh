#!/usr/bin/env bash
# Chapter 13 and the new parts of Chapter 14 on a GPU node, from the repository root:
#
#   OUT=/some/dir bash ch13/gpu_check.sh --part ch13     # about 4 minutes on an H200
#   OUT=/some/dir bash ch13/gpu_check.sh --part ch14     # about 4 minutes on an H200
#   OUT=/some/dir bash ch13/gpu_check.sh                 # both, one after the other (about 8 minutes)
#
# --part ch13: the harness on ch13/adamw_step (full); the training-step profile of the ~1.1 B decoder (three
#   variants, traces and their summaries); the memory snapshot picture; activation checkpointing; expandable
#   segments on variable-length batches; FP8 training vs bf16 (150 steps of the 1.1 B decoder, loss curves);
#   torch.compile on the training step (4 blocks of the ~125 M config: eager, default, compiled autograd).
# --part ch14: the harness on ch14/layernorm_backward and ch14/l2_cache_control (full); graph breaks;
#   dynamic shapes and recompiles; the custom backend; torch.compile on inference at ~125 M and ~1.1 B;
#   the CPU tests of both chapters (on the GPU their Triton kernels run compiled).
# max-autotune on the training step is not in the default run (its compile alone can take minutes): add it
# with MAX_AUTOTUNE=1 (about 3 more minutes); FP8 training with the casts fused by torch.compile: FP8_COMPILE=1
# (up to ~6 more minutes).
# Every step has a timeout; the script never stops at the first failure and exits 1 if anything failed.
# Writes to $OUT: summary.txt, results_*.json / summary_*.md (harness), *.json of each CLI module, traces/*.json.gz,
# memory_timeline.png, memory_snapshot.json, loss_curves.png.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
PART=all
[ "${1:-}" = "--part" ] && PART=${2:-all}
case "$PART" in all|ch13|ch14) ;; *) echo "gpu_check.sh: --part must be ch13, ch14 or all" >&2; exit 2 ;; esac
unset TRITON_INTERPRET
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

step env "$PY" -c 'import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__, torch.cuda.get_device_name())'

harness() {  # harness NAME SECONDS EXAMPLES...
    local name=$1; shift
    local budget=$1; shift
    step "harness_$name" timeout "$budget" "$PY" -m harness run "$@" --device cuda --size full --out "$TMP/$name" \
        --timeout 90 --max-time 1
    [ -f "$TMP/$name/results.json" ] && cp "$TMP/$name/results.json" "$OUT/results_$name.json"
    [ -f "$TMP/$name/summary.md" ] && cp "$TMP/$name/summary.md" "$OUT/summary_$name.md"
}

if [ "$PART" != ch14 ]; then
    harness ch13 60 ch13/adamw_step
    step profile_train_step timeout 90 "$PY" -m ch13.profile_train_step --size full --steps 3 \
        --json "$OUT/profile_train_step.json" --trace-dir "$OUT/traces"
    step memory_snapshot timeout 45 "$PY" -m ch13.memory_snapshot --size full --out "$OUT"
    step activation_checkpointing timeout 45 "$PY" -m ch13.activation_checkpointing --size full --steps 3 \
        --json "$OUT/activation_checkpointing.json"
    step expandable_segments timeout 60 "$PY" -m ch13.expandable_segments --size small --steps 16 \
        --json "$OUT/expandable_segments.json"
    step fp8_training timeout 90 "$PY" -m ch13.fp8_training --size full --steps 150 --out "$OUT"
    if [ "${FP8_COMPILE:-0}" = 1 ]; then  # the casts fused by torch.compile (compiles three models: minutes)
        step fp8_training_compiled timeout 400 "$PY" -m ch13.fp8_training --size full --steps 150 --compile \
            --out "$OUT/fp8_compiled"
    fi
    step compile_train_step timeout 150 "$PY" -m ch13.compile_train_step --size small --layers 4 --steps 20 \
        --modes eager,default,compiled_autograd --timeout 70 --json "$OUT/compile_train_step.json"
    if [ "${MAX_AUTOTUNE:-0}" = 1 ]; then
        step compile_train_step_max_autotune timeout 240 "$PY" -m ch13.compile_train_step --size small --layers 4 \
            --steps 20 --modes eager,max-autotune --timeout 220 --json "$OUT/compile_train_step_max_autotune.json"
    fi
fi

if [ "$PART" != ch13 ]; then
    harness ch14 80 ch14/layernorm_backward ch14/l2_cache_control
    step graph_breaks timeout 60 "$PY" -m ch14.graph_breaks --size full --json "$OUT/graph_breaks.json"
    step dynamic_shapes timeout 90 "$PY" -m ch14.dynamic_shapes --size small --lengths 3 --json "$OUT/dynamic_shapes.json"
    step custom_backend timeout 30 "$PY" -m ch14.custom_backend --size small --json "$OUT/custom_backend.json"
    step compile_inference timeout 150 "$PY" -m ch14.compile_inference --sizes small,full --shape 1x128 \
        --json "$OUT/compile_inference.json"
    step tests timeout 120 "$PY" -m pytest -q tests/test_ch13.py tests/test_ch14_compile.py
fi

echo "=== files in $OUT: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$LOG"
echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
