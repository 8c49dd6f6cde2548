#!/usr/bin/env bash
# Device call 4 of 2026-11-30 (one H200): why tests/test_ch9_cutlass.py segfaulted in call 2 (each kernel and
# shape ran fine in its own process in call 3; the crash line was the call with K = 7, the error path), and
# Nsight Compute on the L2-norm kernel that holds its row in registers (79% of copy bandwidth).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD AISP_GIT_SHA=${SHA:?}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/cutlass_site .whl/nvidia_cutlass-*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/cutlass_site
timeout 150 python3 scripts/build_extensions.py ch9 > $OUT/build.txt 2>&1; echo "build rc=$?" >> $OUT/log.txt
case_py() {  # case_py LABEL CODE: CODE in its own python, its exit status and last lines logged
    timeout 60 python3 -X faulthandler -c "$2" > $OUT/case_$1.txt 2>&1
    echo "$1 rc=$?: $(tail -c 300 $OUT/case_$1.txt | tr '\n' ' ')" >> $OUT/log.txt
}
PRE='import torch; from ch9.cutlass_kernels import ext; a = torch.randn(1, 7, device="cuda").bfloat16(); b = torch.randn(8, 7, device="cuda").bfloat16()'
case_py sm80_k7 "$PRE
try:
    ext().gemm_sm80(a, b)
except RuntimeError as e:
    print('raised', str(e)[:120])"
case_py sm90_k7 "$PRE
try:
    ext().gemm_sm90(a, b)
except RuntimeError as e:
    print('raised', str(e)[:120])"
case_py ch9_dtype 'import torch; from ch9.kernels import ext
try:
    ext().l2norm_fused(torch.randn(4, 8, device="cuda"))
except RuntimeError as e:
    print("raised", str(e)[:120])'
case_py both_valid "$PRE
a = torch.randn(1, 8, device='cuda').bfloat16(); b = torch.randn(8, 8, device='cuda').bfloat16()
print(ext().gemm_sm80(a, b).sum().item(), ext().gemm_sm90(a, b).sum().item())"
so=$(ls -t build/extensions/aisp_ch9_cutlass_kernels-*/*.so | head -1)
{ echo "$so"; ldd "$so" | grep -iE 'stdc|gcc|torch|c10' ; which gdb; } >> $OUT/log.txt 2>&1
if command -v gdb >/dev/null; then
    timeout 60 gdb -batch -ex run -ex bt --args python3 -c "$PRE
ext().gemm_sm80(a, b)" > $OUT/gdb.txt 2>&1
fi
timeout 60 python3 -m pytest -q -p no:cacheprovider -x -v tests/test_ch9_cutlass.py > $OUT/pytest_cutlass.txt 2>&1
echo "pytest rc=$?" >> $OUT/log.txt
timeout 120 python3 -m profiling ch9/fused_l2norm.py --profile ncu --variant fused_row_in_registers --size full \
    --output-root /tmp/ncu9 > $OUT/ncu9.txt 2>&1; echo "ncu rc=$?" >> $OUT/log.txt
find /tmp/ncu9 -name 'summary.md' -exec cp {} $OUT/ncu9_summary.md \;
cat $OUT/log.txt
