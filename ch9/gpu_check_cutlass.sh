#!/usr/bin/env bash
# ch9/cutlass_gemm.py on a GPU node (H200: about 2.5-3.5 minutes, most of it nvcc), from the repository root:
#
#   OUT=/some/dir bash ch9/gpu_check_cutlass.sh
#
# 0. the CUTLASS headers: if python3 cannot import cutlass_library and .whl/ holds the nvidia-cutlass wheel,
#    installs it with pip --no-index --no-deps into /tmp/aisp_cutlass_site and puts that on PYTHONPATH;
# 1. builds ch9/cutlass_kernels (two CUTLASS instantiations; nvcc time in summary.txt);
# 2. the kernels at edge shapes against float64 (tests/test_ch9_cutlass.py, GPU tests included);
# 3. the SASS tensor-core instructions of the built kernels (HGMMA = wgmma, HMMA = mma.sync): sass_mma.txt;
# 4. the example through the harness at size small, then full, each with --max-time 0.5:
#    results_small.json / summary_small.md, results_full.json / summary_full.md.
# Every step has a timeout; a failed step is logged and the next one runs. Exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
BUDGET_S=${BUDGET_S:-330}

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
timed build 300 "$PY" -c 'import time; t = time.time()
from ch9.cutlass_kernels import ext
ext(); print(f"ch9/cutlass_kernels built (or found in the cache) in {time.time() - t:.0f} s")'
timed edge_tests 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_ch9_cutlass.py
timed sass 60 bash -c 'so=$(ls -t build/extensions/aisp_ch9_cutlass_kernels-*/*.so | head -1); echo "$so"
cuobjdump --dump-sass "$so" | grep -oE "\b(HGMMA|HMMA)\.[A-Z0-9_.]+" | sort | uniq -c | tee "'"$OUT"'/sass_mma.txt"'

for size in small full; do
    timed "harness_$size" 200 "$PY" -m harness run ch9/cutlass_gemm --device cuda --size "$size" --max-time 0.5 \
        --timeout 190 --out "$TMP/$size"
    [ -f "$TMP/$size/results.json" ] && cp "$TMP/$size/results.json" "$OUT/results_$size.json"
    [ -f "$TMP/$size/summary.md" ] && cp "$TMP/$size/summary.md" "$OUT/summary_$size.md"
done

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}${skipped:+; skipped: ${skipped[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
