#!/usr/bin/env bash
# Device call 5 of 2026-11-30 (one H200): the CUTLASS tests and example after the Python-side argument checks.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD AISP_GIT_SHA=${SHA:?}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/cutlass_site .whl/nvidia_cutlass-*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/cutlass_site
timeout 150 python3 scripts/build_extensions.py ch9 > $OUT/build.txt 2>&1; echo "build rc=$?" >> $OUT/log.txt
timeout 90 python3 -m pytest -q -p no:cacheprovider -v tests/test_ch9_cutlass.py > $OUT/pytest_cutlass.txt 2>&1
echo "pytest rc=$?" >> $OUT/log.txt
timeout 90 python3 -m harness run ch9/cutlass_gemm --device cuda --size small --max-time 0.3 --timeout 80 \
    --out /tmp/r > $OUT/harness_small.txt 2>&1; echo "harness rc=$?" >> $OUT/log.txt
tail -c 1500 $OUT/pytest_cutlass.txt > $OUT/pytest_tail.txt; rm $OUT/pytest_cutlass.txt
cat $OUT/log.txt
