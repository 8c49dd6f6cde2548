#!/usr/bin/env bash
# GPU check for the kernels branch: variant roles, the merged prefetch example, memory-bound kernels near
# the roofline. Run from the repository root on a GPU node:  OUT=/some/dir bash gpu_check.sh  (about 4 min)
# Writes to $OUT (default ./gpu_check_out), at most six files:
#   results.json, summary.md   harness run of ch6, ch7, ch8 at full size (ch1 at small size: ch1.md)
#   tune.json, tune.txt        every configuration of the tuned kernels timed and verified at full size
#   log.txt                    device, builds, GPU tests, fallback runs, the summary
# Never stops at the first failure; prints a short summary at the end.
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONUNBUFFERED=1
log="$OUT/log.txt"
: >"$log"
step() { echo "== $* ($(date +%T))" | tee -a "$log"; }
status=()

step "device"
$PY -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(), torch.cuda.get_device_capability())' 2>&1 | tee -a "$log"

step "build ch6 ch7 ch8"
if $PY scripts/build_extensions.py ch6 ch7 ch8 >>"$log" 2>&1; then status+=("build: ok"); else status+=("build: FAILED (log.txt)"); fi

step "GPU tests (tests/test_cuda_compile.py -m gpu)"
if timeout 60 $PY -m pytest -q -m gpu tests/test_cuda_compile.py -p no:cacheprovider >>"$log" 2>&1; then
    status+=("gpu tests: ok")
else
    status+=("gpu tests: FAILED (log.txt)")
fi

step "harness run ch6 ch7 ch8 --device cuda (full size)"
tmp=$(mktemp -d)
timeout 150 $PY -m harness run ch6 ch7 ch8 --device cuda --size full --out "$tmp/run" >>"$log" 2>&1
status+=("harness run ch6-8: rc=$?")
cp "$tmp/run/results.json" "$tmp/run/summary.md" "$OUT/" 2>/dev/null
if [ ! -f "$OUT/results.json" ]; then
    step "fallback: each example in this process (python chN/example.py --size full)"
    for f in ch6/*.py ch7/*.py ch8/*.py; do
        case "$f" in */__init__.py) continue ;; esac
        echo "### $f" >>"$log"
        timeout 40 $PY "$f" --size full >>"$log" 2>&1 || echo "($f: rc=$?)" >>"$log"
    done
    status+=("fallback runs: in log.txt")
fi

step "tuning sweep (scripts/tune_memory_kernels.py, full size)"
timeout 100 $PY scripts/tune_memory_kernels.py --json "$OUT/tune.json" >"$OUT/tune.txt" 2>&1
status+=("tuning sweep: rc=$? (tune.txt)")

step "harness run ch1 --size small (roles and declarations only)"
timeout 40 $PY -m harness run ch1 --device cuda --size small --out "$tmp/ch1" >>"$log" 2>&1
status+=("harness run ch1: rc=$?")
cp "$tmp/ch1/summary.md" "$OUT/ch1.md" 2>/dev/null
rm -rf "$tmp"

step "summary"
printf '%s\n' "${status[@]}" | tee -a "$log"
# Every optimized, non-teaching variant of a memory-bound example against 85% of the copy bandwidth.
$PY - "$OUT/results.json" <<'EOF' 2>&1 | tee -a "$log"
import json, sys
try:
    data = json.load(open(sys.argv[1]))
except (OSError, ValueError) as exc:
    sys.exit(f"no results.json to summarize ({exc})")
for ex in data.get("examples", []):
    for v in ex.get("variants", []):
        frac = v.get("fraction_of_peak_bandwidth")
        if v.get("role") != "optimized" or frac is None:
            continue
        mark = "ok " if frac >= 0.85 else "LOW"
        print(f"{mark} {ex.get('id', '?'):32s} {v['name']:24s} {frac:6.1%} of copy bandwidth"
              f"{'  (teaching)' if v.get('teaching') else ''}{'' if v.get('verified', True) else '  NOT VERIFIED'}")
    if ex.get("status") not in ("ok", None):
        print(f"    {ex.get('id')}: {ex.get('status')} {ex.get('reason', '')[:200]}")
EOF
[ -f "$OUT/tune.txt" ] && grep -E "^(ch[0-9]|  best:)|FAILED|configurations" "$OUT/tune.txt" | tee -a "$log"
exit 0
