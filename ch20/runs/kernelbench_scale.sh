#!/usr/bin/env bash
# Chapter 20 verifier at KernelBench's own sizes: five level-1 problems, the reference given as the candidate.
#
#   OUT=/some/dir bash ch20/runs/kernelbench_scale.sh            # on the GPU machine, from the repo root
#   OUT=/tmp/kb bash ch20/runs/kernelbench_scale.sh --scale-down --device cpu    # the same path on a CPU
#
# Needs the five KernelBench problem files in .kernelbench/ at the repo root (git-ignored, never committed;
# fetched from github.com/ScalingIntelligence/KernelBench, KernelBench/level1/):
#   1_Square_matrix_multiplication_.py 40_LayerNorm.py 23_Softmax.py 97_ScaledDotProductAttention.py
#   95_CrossEntropyLoss.py
# Writes $OUT/kernelbench_scale.json, $OUT/kernelbench_scale.md and $OUT/run.log; each problem runs in a
# worker of its own with a time cap (--per-problem-s, default 45 s plus 8 s to stop), so one problem's failure is recorded
# and the others still run, and the whole script ends within 5 minutes. Exit 0 when all five are accepted.
# Commit the results under ch20/runs/kernelbench-scale-h200/ (the JSON, the Markdown and run.log).
set -u
cd "$(dirname "$0")/../.." || exit 2
OUT=${OUT:?set OUT to the output directory}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
{
  echo "# $(date -u +%FT%TZ) $(uname -srm) git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__)" 2>&1
  id -u; uptime
} > "$OUT/run.log"
timeout 290 "$PY" -m ch20.kernelbench_scale --dir .kernelbench --out "$OUT" "$@" 2>&1 | tee -a "$OUT/run.log"
status=${PIPESTATUS[0]}
echo "# exit $status" >> "$OUT/run.log"
exit "$status"
