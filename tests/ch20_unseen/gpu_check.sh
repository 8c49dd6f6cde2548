#!/usr/bin/env bash
# The unseen KernelBench-format problems (tests/ch20_unseen/) through the verifier on a GPU, from the
# repository root (about 1-2 minutes on an H200: 10 live references, 19 candidates, 3 bad problem files,
# three verifications at a time):
#
#   OUT=/some/dir bash tests/ch20_unseen/gpu_check.sh
#
# Every problem's reference copied as its candidate must be accepted, every wrong candidate rejected with
# its reason, every bad problem file a usage error; on CUDA that also checks the repeat (nondeterminism)
# check against cuDNN's convolutions and LSTM, and that float64/float16 inputs stay so on the device.
# Writes $OUT/summary.txt and $OUT/unseen_cuda.json (one row per verdict). Exits 1 if any verdict differs.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/gpu_check_lib.sh

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
step unseen_cuda timeout 600 "$PY" tests/ch20_unseen/unseen.py --device cuda --json "$OUT/unseen_cuda.json"
step cli_dropout bash -c "'$PY' -m ch20.verify --device cuda --problem tests/ch20_unseen/bad/dropout_train.py \
    --candidate tests/ch20_unseen/bad/dropout_train.py --min-speedup 0; test \$? -eq 2"

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
