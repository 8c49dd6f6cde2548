#!/usr/bin/env bash
# Chapter 17 on a GPU node, in one go (about 3 minutes on an H200; each real-engine point is cut at 12-15 s, so at
# most ~4.5 minutes), from the repository root:
#
#   OUT=/some/dir bash ch17/gpu_check.sh [--size full|small|tiny]
#
# 1. the chapter's CPU tests; 2. the engine's step time measured and fitted at --size (full: 1B in bf16);
# 3. routing (round-robin / least tokens / prefix affinity): 4 real engines on their own clocks, then simulated
#    clusters of 8..64 workers driven by the fitted step model; 4. early rejection vs admitting everything at
#    0.5x..3x load (2 real engines, 8 simulated workers); 5. the scalability plan from the measured step model.
# Writes to $OUT (default ./gpu_check_out): summary.txt, step_model.json, routing.{json,png},
# admission.{json,png}, capacity_plan.json. Never stops at the first failure; exits 1 if anything failed
# (a missed goal is not a failure: it is in the JSON and printed as MISSED).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
BUDGET_S=${BUDGET_S:-270}   # the whole script's seconds; each step's timeout is cut to what is left
size_option "$@"
SM="$OUT/step_model.json"

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
timed tests 120 "$PY" -m pytest -q tests/test_ch17.py
timed step_model 120 "$PY" -m ch17.step_model --size "$SIZE" --device cuda --json "$SM"
SMARG=(); [ -s "$SM" ] && SMARG=(--step-model "$SM")   # else each command measures its own
timed routing 240 "$PY" -m ch17.routing --size "$SIZE" --device cuda ${SMARG[@]+"${SMARG[@]}"} --wall-limit 15 \
    --json "$OUT/routing.json" --plot "$OUT/routing.png"
timed admission 200 "$PY" -m ch17.admission --size "$SIZE" --device cuda ${SMARG[@]+"${SMARG[@]}"} --wall-limit 12 \
    --json "$OUT/admission.json" --plot "$OUT/admission.png"
timed capacity_plan 60 "$PY" -m ch17.capacity_plan --size "$SIZE" --device cuda ${SMARG[@]+"${SMARG[@]}"} --json "$OUT/capacity_plan.json"

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}; ${#skipped[@]} skipped for time${skipped:+: ${skipped[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
