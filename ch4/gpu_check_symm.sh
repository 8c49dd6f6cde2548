#!/usr/bin/env bash
# Chapter 4's symmetric memory and NVSHMEM on a multi-GPU node, in one go (about 2.5 minutes on 2 H200s,
# the NVSHMEM program's nvcc build included), from the repository root:
#
#   OUT=/some/dir bash ch4/gpu_check_symm.sh [--size full|small|tiny]
#
# Uses every visible GPU (2 at least; with fewer it says so and exits 0, having run nothing).
# 1. python -m ch4.symmetric_memory: one-sided put/get and the fused all-gather + matmul vs NCCL;
# 2. python -m ch4.nvshmem_put: the device-initiated NVSHMEM ring vs NCCL send/recv (built with nvcc first);
# 3. tests/test_ch4_symmetric.py, the multi-GPU tests included.
# Writes to $OUT (default ./gpu_check_out): summary.txt (the log), summary.md, symmetric_memory.json,
# nvshmem_put.json. Multicast stays off throughout (no NVLS objects, no multimem operations).
# Never stops at the first failure; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option "$@"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.device_count(), "GPUs:",
    torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
from ch4.nvshmem_put import find_nvshmem; print("nvshmem:", find_nvshmem())'
gpus=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
if [ "${gpus:-0}" -lt 2 ]; then
    echo "=== skipped: ch4 symmetric memory and NVSHMEM need 2+ GPUs, $gpus visible" | tee -a "$LOG"
    printf '# ch4 symmetric memory / NVSHMEM\n\nSkipped: needs 2+ GPUs, %s visible.\n' "$gpus" >"$OUT/summary.md"
    exit 0
fi

step symmetric_memory timeout 200 "$PY" -m ch4.symmetric_memory --device cuda --size "$SIZE" \
    --json "$OUT/symmetric_memory.json" --timeout 180
step nvshmem_put timeout 240 "$PY" -m ch4.nvshmem_put --size "$SIZE" --json "$OUT/nvshmem_put.json" --timeout 120
step tests timeout 300 "$PY" -m pytest -q tests/test_ch4_symmetric.py

"$PY" - "$OUT" <<'EOF' || failed+=(summary_md)
import json, sys
from pathlib import Path
from ch4 import nvshmem_put, symmetric_memory
out = Path(sys.argv[1])
parts = ["# ch4 symmetric memory / NVSHMEM", ""]
for name, module in (("symmetric_memory", symmetric_memory), ("nvshmem_put", nvshmem_put)):
    path = out / f"{name}.json"
    text = module.render(json.loads(path.read_text())) if path.exists() else "no result (see summary.txt)"
    parts += [f"## {name}", "", "```", text, "```", ""]
(out / "summary.md").write_text("\n".join(parts))
EOF

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
