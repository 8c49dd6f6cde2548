#!/usr/bin/env bash
# The validation sweep. On a GPU node: build the CUDA extensions, run every chapter (or the ones named)
# through the harness at full size, write results under results/<timestamp>/, print a summary, and
# exit non-zero when anything failed. Without a GPU it says so and runs what can run, at tiny size.
#
#   ./run_all_tests.sh                   every chapter
#   ./run_all_tests.sh ch1 ch7           those chapters
#   ./run_all_tests.sh ch1 --record      also record chN/expectations/<gpu>.json
# Any option is passed to `python -m harness run` (--size, --timeout, --cold-l2, --cpu-threads, ...); on a GPU
# it runs with --strict, so a missed target or a regression fails the validation.
# With two or more GPUs it then runs the multi-GPU commands listed in MULTIGPU_MODULES (below) under torchrun,
# one process per GPU, each writing its JSON to results/<timestamp>/multigpu/<module>.json.
set -uo pipefail
cd "$(dirname "$0")"

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    # A GPU node whose own python3 already has torch (a container image, say) can run without a .venv.
    if version=$(python3 -c 'import torch, numpy; print(torch.__version__)' 2>/dev/null); then
        PY=python3
        echo "run_all_tests.sh: no .venv here: using python3 (torch $version)"
    else
        echo "run_all_tests.sh: no .venv here and python3 has no torch: run ./setup.sh first" >&2
        exit 2
    fi
fi

targets=()
for arg in "$@"; do [[ $arg == ch* ]] && targets+=("$arg"); done

# One look at the GPUs (importing torch takes seconds): their number, and the first one's name.
read -r ngpu gpu_name < <("$PY" -c 'import torch; ok = torch.cuda.is_available()
print(torch.cuda.device_count() if ok else 0, torch.cuda.get_device_name() if ok else "")' 2>/dev/null || echo 0)
if [ "${ngpu:-0}" -ge 1 ]; then
    echo "run_all_tests.sh: $ngpu GPU(s), $gpu_name"
    # On a GPU node a missed target or a regression fails the validation: --strict.
    echo "run_all_tests.sh: --strict: a missed target or a regression makes this exit 1"
    defaults=(--device cuda --strict)
    if [ -f scripts/build_extensions.py ]; then
        # A build failure is reported here and again as the failing examples' status; the sweep goes on.
        "$PY" scripts/build_extensions.py "${targets[@]}" || echo "run_all_tests.sh: some extensions failed to build (see above)" >&2
    fi
else
    echo "=================================================================="
    echo " No CUDA GPU found: running what can run on the CPU at tiny size."
    echo " GPU-only examples are reported as skipped, with their reason."
    echo "=================================================================="
    defaults=(--device cpu --size tiny)
fi

# Multi-GPU commands (not harness examples: each spans processes). One entry per command: "module args...";
# it is started as `torchrun --standalone --nproc-per-node=<GPUs> -m module args... --json FILE` and must write
# its result there (rank 0) and exit non-zero when anything did not verify. Append new ones here.
MULTIGPU_MODULES=(
    "ch4.collectives --backend nccl --size full"
)
MULTIGPU_TIMEOUT_S=600

out="results/$(date +%Y%m%d-%H%M%S)"
"$PY" -m harness run "${defaults[@]}" --out "$out" "$@"
rc=$?
[ -f "$out/summary.md" ] && echo "run_all_tests.sh: results in $out (results.json, summary.md)"

if [ "${ngpu:-0}" -ge 2 ]; then
    mkdir -p "$out/multigpu"
    # NVLink multicast stays off in every rank (see README: multi-GPU runs).
    export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    for entry in "${MULTIGPU_MODULES[@]}"; do
        read -r -a cmd <<< "$entry"
        module=${cmd[0]}
        chapter=${module%%.*}
        if [ ${#targets[@]} -gt 0 ] && [[ " ${targets[*]} " != *" $chapter "* ]]; then
            continue   # chapters were named, and not this one
        fi
        echo "run_all_tests.sh: multi-GPU: torchrun --nproc-per-node=$ngpu -m $entry"
        timeout --kill-after=15 "$MULTIGPU_TIMEOUT_S" "$PY" -m torch.distributed.run --standalone --nproc-per-node="$ngpu" \
            -m "${cmd[@]}" --json "$out/multigpu/$module.json" 2>&1 | tee "$out/multigpu/$module.log"
        mrc=${PIPESTATUS[0]}
        echo "$module rc=$mrc" >> "$out/multigpu/status.txt"
        [ "$mrc" -eq 0 ] || { echo "run_all_tests.sh: multi-GPU $module failed (rc=$mrc)" >&2; rc=1; }
    done
    echo "run_all_tests.sh: multi-GPU results in $out/multigpu"
fi
exit $rc
