#!/usr/bin/env bash
# ch9/cutlass_gemm.py on a GPU node (H200: about 2.5-3.5 minutes, most of it nvcc), from the repository root:
#
#   OUT=/some/dir bash ch9/gpu_check_cutlass.sh
#
# 0. the CUTLASS headers: if python3 cannot import cutlass_library and .whl/ holds the nvidia-cutlass wheel,
#    installs it with pip --no-index --no-deps into /tmp/aisp_cutlass_site and puts that on PYTHONPATH;
# 1. builds ch9/cutlass_kernels (two CUTLASS instantiations; nvcc time in summary.txt), verbose, and fails
#    a step if ptxas serialized the wgmma pipeline (its note C7510);
# 2. the kernels at edge shapes against float64 (tests/test_ch9_cutlass.py, GPU tests included);
# 3. the example through the harness at size small, then full, each with --max-time 0.5:
#    results_small.json / summary_small.md, results_full.json / summary_full.md;
# 4. the SASS tensor-core instructions of the built kernels (HGMMA = wgmma, HMMA = mma.sync): sass_mma.txt.
# Every step has a timeout; a failed step is logged and the next one runs. Exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
BUDGET_S=${BUDGET_S:-235}  # seconds for the whole script; the last steps get what is left

if ! "$PY" -c 'import cutlass_library' 2>/dev/null; then
    wheel=$(ls .whl/nvidia_cutlass-*.whl 2>/dev/null | tail -1)
    if [ -n "$wheel" ]; then
        step install_cutlass_wheel "$PY" -m pip install -q --no-index --no-deps --upgrade \
            --target /tmp/aisp_cutlass_site "$wheel"
        export PYTHONPATH=/tmp/aisp_cutlass_site:$PYTHONPATH
    else
        echo "=== no cutlass_library and no .whl/nvidia_cutlass-*.whl: the CUTLASS variants will be skipped" | tee -a "$LOG"
    fi
fi

step env "$PY" -c 'import torch, importlib.metadata as m, cutlass_library as c
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), "| nvidia-cutlass", m.version("nvidia-cutlass"), c.__path__[0])'
# Verbose build: ptxas's notes land in the log, and a wgmma pipeline it serialized (C7510) is a failed step.
timed build 300 env AISP_BUILD_VERBOSE=1 "$PY" -c 'import time; t = time.time()
from ch9.cutlass_kernels import ext
ext(); print(f"ch9/cutlass_kernels built (or found in the cache) in {time.time() - t:.0f} s")'
step wgmma_not_serialized bash -c "! grep -nE 'C75[1]0' '$LOG'"  # the [1]: not this line's own log entry
timed edge_tests 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_ch9_cutlass.py
for size in small full; do
    limit=70; [ "$size" = full ] && limit=150
    left=$((BUDGET_S - SECONDS)); [ "$left" -lt "$limit" ] && limit=$left
    # the harness's own deadline first, so that it still writes results.json for an example it had to stop
    timed "harness_$size" "$limit" "$PY" -m harness run ch9/cutlass_gemm --device cuda --size "$size" --max-time 0.5 \
        --timeout "$((limit > 30 ? limit - 10 : 20))" --out "$TMP/$size"
    [ -f "$TMP/$size/results.json" ] && cp "$TMP/$size/results.json" "$OUT/results_$size.json"
    [ -f "$TMP/$size/summary.md" ] && cp "$TMP/$size/summary.md" "$OUT/summary_$size.md"
done
CUOBJDUMP=$(command -v cuobjdump || echo "${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump")
timed sass 60 bash -c 'set -o pipefail; so=$(ls -t build/extensions/aisp_ch9_cutlass_kernels-*/*.so | head -1)
echo "$so"; "'"$CUOBJDUMP"'" --dump-sass "$so" | grep -oE "\b(HGMMA|HMMA)\.[A-Za-z0-9_.]+" | sort | uniq -c \
    | tee "'"$OUT"'/sass_mma.txt"'

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}${skipped:+; skipped: ${skipped[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
