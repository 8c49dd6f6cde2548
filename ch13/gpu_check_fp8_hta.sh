#!/usr/bin/env bash
# Chapter 13's FP8 training with torchao's references and the HTA summary of the training-step traces, on a
# GPU node, from the repository root:
#
#   OUT=/some/dir bash ch13/gpu_check_fp8_hta.sh                    # all, under 8 minutes on an H200 (BUDGET_S=470)
#   OUT=/some/dir bash ch13/gpu_check_fp8_hta.sh --part hta         # 1 + 2 only (~2 minutes)
#   OUT=/some/dir bash ch13/gpu_check_fp8_hta.sh --part eager       # 1 + 3 only (~4 minutes)
#   OUT=/some/dir bash ch13/gpu_check_fp8_hta.sh --part compiled    # 1 + 4 only (~4-5 minutes for all five runs)
#
# 1. Installs the wheels the node lacks from .whl/ when present (torchao 0.17, HolisticTraceAnalysis, pandas<3,
#    plotly, pytz, tzdata) into a folder of $TMP put first on PYTHONPATH (never into the system); prints which
#    versions import.
# 2. The profiled training step of the ~1.1 B decoder (three variants, 3 steps each; ~35 s), then HTA's temporal,
#    kernel and idle-time breakdowns of each variant's trace (hta_report; ~30-60 s).
# 3. FP8 training vs bf16 at full size, eager, 150 steps: bf16, ours and torchao's, tensorwise and rowwise
#    (~200 s).
# 4. The same with each block compiled (torch.compile, regional), 100 steps (cut from 150 to fit: compiling
#    costs ~30-40 s a run), with what is left of the budget: each run is written as it finishes, so a run cut by
#    the deadline keeps the ones before it. In the full run it likely gets bf16 and the tensorwise pair; all five
#    need a call of their own (--part compiled) or BUDGET_S=590. COMPILED_RUNS picks the runs.
# Every step has a timeout; the script never stops at the first failure and exits 1 if anything failed.
# Writes to $OUT: summary.txt, profile_train_step.json, traces/*.json.gz, hta/hta_report.json,
# hta/hta_breakdown.png, hta/<variant>/*.csv, fp8_eager/ and fp8_compiled/ (fp8_training.json, loss_curves.png).
set -uo pipefail
cd "$(dirname "$0")/.."
PART=all
if [ $# -gt 0 ]; then
    PART=bad
    [ $# -eq 2 ] && [ "$1" = "--part" ] && PART=$2
fi
case "$PART" in all|hta|eager|compiled) ;;
    *) echo "gpu_check_fp8_hta.sh: the only option is --part all|hta|eager|compiled" >&2; exit 2 ;; esac
. scripts/gpu_check_lib.sh
BUDGET_S=${BUDGET_S:-470}
COMPILED_RUNS=${COMPILED_RUNS:-bf16,fp8_tensorwise,torchao_tensorwise,fp8_rowwise,torchao_rowwise}
unset TRITON_INTERPRET
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

wheels=$(ls .whl/torchao-*.whl .whl/holistictraceanalysis-*.whl .whl/pandas-2*.whl .whl/plotly-*.whl \
    .whl/pytz-*.whl .whl/tzdata-*.whl 2>/dev/null)
if [ -n "$wheels" ]; then
    timed install_wheels 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target "$TMP/site" $wheels
    export PYTHONPATH="$TMP/site:$PYTHONPATH"  # first: pandas<3 for HTA over the node's pandas
fi
timed env 60 "$PY" -c '
import importlib, torch
print("torch", torch.__version__, torch.version.cuda, torch.cuda.get_device_name())
for name in ("torchao", "hta", "pandas", "numpy", "plotly", "matplotlib"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"), m.__file__)
    except Exception as exc:
        print(name, "not importable:", type(exc).__name__, exc)
'

if [ "$PART" = all ] || [ "$PART" = hta ]; then
timed profile_train_step 120 "$PY" -m ch13.profile_train_step --size full --steps 3 \
    --json "$OUT/profile_train_step.json" --trace-dir "$OUT/traces"
timed hta_report 150 "$PY" -m ch13.hta_report "$OUT/traces" --out "$OUT/hta" --profile-json "$OUT/profile_train_step.json"
fi
if [ "$PART" = all ] || [ "$PART" = eager ]; then
timed fp8_training_eager 270 "$PY" -m ch13.fp8_training --size full --steps 150 --out "$OUT/fp8_eager"
fi
if [ "$PART" = all ] || [ "$PART" = compiled ]; then
timed fp8_training_compiled 420 "$PY" -m ch13.fp8_training --size full --steps 100 --compile \
    --runs "$COMPILED_RUNS" --out "$OUT/fp8_compiled"
fi

echo "=== files in $OUT: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$LOG"
echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}; ${#skipped[@]} skipped${skipped:+: ${skipped[*]}}; $SECONDS s" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
