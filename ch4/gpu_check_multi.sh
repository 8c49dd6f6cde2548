#!/usr/bin/env bash
# Chapter 4 on a node with two or more GPUs (all visible GPUs are used), from the repository root:
#
#   OUT=/some/dir bash ch4/gpu_check_multi.sh [--size full|small|tiny]
#
# About 1.5-2 minutes on 2 H200s (at most ~3). Steps, none stopping the next:
#   1. p2p          benchmark_peak.py --p2p-only: every ordered GPU pair, copy engine, SM kernel pull/push,
#                   both directions at once, 8-byte round trip            -> peaks_p2p.json (and the
#                   pairs beside their nvidia-smi links, in summary.txt)
#   2. collectives  python -m ch4.collectives over NCCL, one spawned rank per GPU, 8 B .. 1 GiB (full), every
#                   result verified before it is timed, busbw held against step 1's P2P ceiling
#                                                                          -> collectives.json, collectives_busbw.png
#   3. torchrun     the same command under torchrun at --size small (the launch path run_all_tests.sh uses)
#                                                                          -> collectives_torchrun.json
#   4. tests        pytest -m multigpu tests/test_ch4_collectives.py
# Written to $OUT (default ./gpu_check_out): summary.txt (everything printed), the files above, topo.txt.
# Exits 1 if any step failed. NVLink multicast stays off in every process.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
size_option "$@"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)
step env "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.device_count(), "x", torch.cuda.get_device_name())'
command -v nvidia-smi >/dev/null && nvidia-smi topo -m > "$OUT/topo.txt" 2>&1
if [ "${NGPU:-0}" -lt 2 ]; then
    echo "=== gpu_check_multi.sh: $NGPU GPU(s) visible: needs 2 or more; nothing measured" | tee -a "$LOG"
    exit 1
fi

quick=()
[ "$SIZE" = full ] || quick=(--quick)
step p2p timeout --kill-after=10 240 "$PY" benchmark_peak.py --p2p-only "${quick[@]}" --out "$OUT/peaks_p2p.json"
peaks=()
if [ -f "$OUT/peaks_p2p.json" ]; then
    peaks=(--peaks "$OUT/peaks_p2p.json")
    topo=()
    [ -s "$OUT/topo.txt" ] && topo=(--topo-file "$OUT/topo.txt")
    step topology "$PY" -m ch2.topology "${peaks[@]}" "${topo[@]}"   # each pair's link beside its measured figures
fi

step collectives timeout --kill-after=10 300 "$PY" -m ch4.collectives --backend nccl --world "$NGPU" --size "$SIZE" \
    "${peaks[@]}" --timeout 240 --json "$OUT/collectives.json" --plot "$OUT/collectives_busbw.png"
step torchrun timeout --kill-after=10 180 "$PY" -m torch.distributed.run --standalone --nproc-per-node="$NGPU" \
    -m ch4.collectives --backend nccl --size small "${peaks[@]}" --timeout 120 --json "$OUT/collectives_torchrun.json"
step tests timeout --kill-after=10 180 "$PY" -m pytest -q -m multigpu tests/test_ch4_collectives.py

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
