#!/usr/bin/env bash
# Profile Chapter 7 with every profiler at the default size and iteration counts, on a GPU machine, and
# keep the small files: is a chapter done in minutes, and what did it write?
#
#   OUT=/some/folder profiling/gpu_check.sh        # from the repository or anywhere; PY=python3 by default
#
# Writes to $OUT: summary.md and summary.json (ch7's own), run.log (one line a job, with its time),
# disk.txt (what the run left on disk, largest files first), build.log (the ch7 extension build), and,
# when time is left, trim_check.md: ch1/batched_matmul (40 kernels a call) under torch and ncu with a
# small trace cap, to see a real GPU trace trimmed and the ncu kernel cap reached. The profiles
# themselves stay in a temporary folder, deleted at the end. Every step runs whatever the one before
# did; the whole script ends within DEADLINE_S seconds (480 by default).
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-python3}
OUT=${OUT:-profiles/gpu_check}
DEADLINE_S=${DEADLINE_S:-480}          # the whole script, build included
mkdir -p "$OUT"
start=$(date +%s)
work=$(mktemp -d /tmp/aisp-profile-check.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "gpu_check: $($PY -c 'import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")' 2>&1)"
for tool in ncu nsys; do echo "gpu_check: $tool: $(command -v $tool || echo 'not on PATH (the profiler looks in the usual folders too)')"; done

# Built once here, so that no profiled child spends its timeout compiling.
timeout 240 "$PY" scripts/build_extensions.py ch7 >"$OUT/build.log" 2>&1
echo "gpu_check: build_extensions ch7 exited $? after $(( $(date +%s) - start )) s"

left=$(( DEADLINE_S - ($(date +%s) - start) - 30 ))   # 30 s for the wrap-up below
budget=$(( left - 60 ))                                  # a job started at the budget's end still finishes
echo "gpu_check: profiling ch7, budget ${budget} s (hard stop at ${left} s)"
PYTHONUNBUFFERED=1 timeout --signal=INT --kill-after=20 "$left" \
    "$PY" -m profiling ch7 --profile all --output-root "$work/ch7" --budget "$budget" --timeout 120 \
    >"$OUT/run.log" 2>&1
rc=$?
echo "gpu_check: profiling exited $rc after $(( $(date +%s) - start )) s in all"

cp "$work/ch7/summary.md" "$work/ch7/summary.json" "$OUT/" 2>/dev/null || echo "gpu_check: no summary was written"
{
    echo "total: $(du -sh "$work/ch7" 2>/dev/null | cut -f1)"
    echo "by profiler:"
    for p in torch ncu nsys; do
        echo "  $p: $(find "$work/ch7" -path "*/$p/*" -type f -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {printf "%.1f MB in %d files", s/1e6, NR}')"
    done
    echo "largest files:"
    find "$work/ch7" -type f -printf '%s %P\n' 2>/dev/null | sort -rn | head -15
    echo "left in /tmp by nsys (should be none):"
    ls -la /tmp/nsys-report-*.qdstrm 2>/dev/null || echo "  none"
} >"$OUT/disk.txt"

left=$(( DEADLINE_S - ($(date +%s) - start) - 30 ))
if [ "$left" -ge 50 ]; then
    PYTHONUNBUFFERED=1 timeout --signal=INT --kill-after=10 "$left" \
        "$PY" -m profiling ch1/batched_matmul --profile torch,ncu --trace-max-events 600 --output-root "$work/ch1" \
        --budget $(( left - 30 )) --timeout 60 >"$work/ch1.log" 2>&1
    echo "gpu_check: ch1 trim check exited $? after $(( $(date +%s) - start )) s in all"
    { cat "$work/ch1/summary.md" 2>/dev/null || echo "no summary"; echo; echo '```'; cat "$work/ch1.log"; echo '```'; } >"$OUT/trim_check.md"
else
    echo "gpu_check: no time left for the ch1 trim check ($left s)"
fi

echo "---- run.log (last lines) ----"
tail -n 8 "$OUT/run.log"
echo "---- statuses ----"
grep -oE '^\[[0-9]+/[0-9]+ [0-9]+s\] \S+ \S+ \S+: [a-z]+' "$OUT/run.log" | awk '{print $NF, $(NF-1)}' | sort | uniq -c
echo "---- time and disk ----"
sed -n '/^## Time and disk/,$p' "$OUT/summary.md" 2>/dev/null | head -30
echo "---- disk ----"
head -6 "$OUT/disk.txt"
echo "---- trim check ----"
grep -E "torch trace: kept|\| (yes|no) \|" "$OUT/trim_check.md" 2>/dev/null | head -6
exit $rc
