#!/usr/bin/env bash
# Chapters 2-5 on one GPU node, in one go (about 4 minutes on an H200). From the repository root:
#   bash ch2/gpu_check.sh            # writes to $OUT (default: results/gpu_check-<time>)
# Wheels for packages the node lacks (kvikio, datasketch) are installed from .whl/ when present, into
# a folder on PYTHONPATH (never into the system). Nothing stops at the first failure: each step's exit
# status is recorded and the summary at the end lists them. Files written (all small):
#   gpu_check.log   everything printed          reports.json   hardware_info, audit, NUMA, DDP, loader sweep, dedup
#   results.json    the harness sweep (ch2-ch5) summary.md     its tables
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu_check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
PY=${PY:-python3}
[ -x .venv/bin/python ] && [ -z "${PY_FORCE:-}" ] && .venv/bin/python -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && PY=.venv/bin/python
WORK=$(mktemp -d /tmp/aisp_gpu_check.XXXXXX)
LOG="$OUT/gpu_check.log"
: > "$LOG"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
declare -a STATUS=()

step() {  # step NAME TIMEOUT_S COMMAND...: run it, log it, remember how it ended
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "=== $name: $*" | tee -a "$LOG"
    timeout --kill-after=10 "$limit" "$@" >> "$LOG" 2>&1
    local rc=$?
    STATUS+=("$(printf '%-28s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - t0))")")
    echo "=== $name: rc=$rc in $((SECONDS - t0)) s" | tee -a "$LOG"
    return 0
}

wheels=$(ls .whl/kvikio*.whl .whl/libkvikio*.whl .whl/rapids_logger*.whl .whl/cuda_pathfinder*.whl .whl/datasketch*.whl 2>/dev/null)
if [ -n "$wheels" ]; then
    step install_wheels 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" $wheels
    export PYTHONPATH="$PYTHONPATH:$WORK/site"
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.get_device_name())' 2>&1 | tee -a "$LOG"

# The reports (plain modules, JSON each), then folded into one file.
step hardware_info 60 "$PY" -m ch2.hardware_info --json "$WORK/hardware_info.json"
step audit 60 "$PY" -m ch3.audit --json "$WORK/audit.json"
step numa_affinity 120 "$PY" -m ch3.numa_affinity --device cuda --size small --json "$WORK/numa_affinity.json"
# One process for the three descriptions (each import of torch costs seconds); builds ch2's kernels too.
step describe 180 "$PY" -c '
import json
from ch2 import latency_hiding, managed_memory
latency_hiding.describe()
managed_memory.describe()
try:
    from ch5.gds_read import describe
    print("cuFile:", json.dumps(describe()))
except ImportError as exc:
    print("cuFile: kvikio not installed:", exc)
'

# Every example of chapters 2-5 through the harness, at full size.
step harness_ch2_ch5 900 "$PY" -m harness run ch2 ch3 ch4 ch5 --device cuda --size full --out "$WORK/harness" --timeout 240
cp "$WORK/harness/results.json" "$OUT/results.json" 2>/dev/null
cp "$WORK/harness/summary.md" "$OUT/summary.md" 2>/dev/null
if [ ! -f "$WORK/harness/results.json" ]; then   # the harness CLI changed or broke: run each example directly
    for f in ch2/managed_memory.py ch2/latency_hiding.py ch2/coherent_memory.py ch5/data_pipeline.py ch5/gpu_decode.py ch5/gds_read.py; do
        step "direct_$(basename "$f" .py)" 240 "$PY" "$f" --size full --device cuda
    done
fi

# Tuning sweeps and the multi-process pieces.
step loader_sweep 240 "$PY" -m ch5.loader_sweep --device cuda --size full --epochs 1 --json "$WORK/loader_sweep.json"
step ddp_overlap_gloo 240 "$PY" -m ch4.ddp_overlap --size small --json "$WORK/ddp_overlap.json"
ngpu=$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
if [ "${ngpu:-0}" -ge 2 ]; then
    step ddp_overlap_nccl 240 "$PY" -m ch4.ddp_overlap --backend nccl --device cuda --world "$ngpu" --size full \
        --json "$WORK/ddp_overlap_nccl.json"
fi
step dedup 240 "$PY" -m ch5.dedup --docs 5000 --json "$WORK/dedup.json"

"$PY" - "$WORK" "$OUT" <<'EOF' >> "$LOG" 2>&1
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
def load(p):
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        return {"missing": f"{p.name}: {exc}"}
names = ["hardware_info", "audit", "numa_affinity", "loader_sweep", "ddp_overlap", "ddp_overlap_nccl", "dedup"]
reports = {n: load(work / f"{n}.json") for n in names if (work / f"{n}.json").exists() or n != "ddp_overlap_nccl"}
(out / "reports.json").write_text(json.dumps(reports, indent=1, default=str))
EOF

echo "======== summary ========" | tee -a "$LOG"
printf '%s\n' "${STATUS[@]}" | tee -a "$LOG"
if [ -f "$OUT/results.json" ]; then
    "$PY" - "$OUT/results.json" <<'EOF' | tee -a "$LOG"
import json, sys
r = json.load(open(sys.argv[1]))
for e in r["examples"]:
    fast = [v for v in e.get("variants", []) if v.get("median_ms")]
    best = min(fast[1:], key=lambda v: v["median_ms"], default=None) if len(fast) > 1 else None
    sp = f"speedup {e['speedup']:.2f}x ({best['name']})" if e.get("speedup") and best else ""
    print(f"{e['id']:26s} {e['status']:8s} {sp} {e.get('reason', '')[:150]}")
EOF
fi
"$PY" - "$OUT/reports.json" <<'EOF' | tee -a "$LOG"
import json, sys
r = json.load(open(sys.argv[1]))
hw = r.get("hardware_info", {})
for line in hw.get("findings", [])[:8]:
    print("hardware:", line)
a = r.get("audit", {})
if "counts" in a:
    print("audit:", a["counts"], "warn:", [i["name"] for i in a["items"] if i["status"] == "warn"])
n = r.get("numa_affinity", {})
print("numa:", n.get("skip") or n.get("local_over_remote"))
ls = r.get("loader_sweep", {})
if "best" in ls:
    b = ls["best"]
    print(f"loader best: workers={b['workers']} pin={b['pin']} prefetch={b['prefetch']} batched={b['batched']} "
          f"{b['samples_per_s']:.0f} samples/s, step busy {b['step_utilization']:.0%}; verified {ls['verified']}")
d = r.get("ddp_overlap", {})
if "rows" in d:
    print("ddp (gloo):", {x["way"]: round(x["ms_per_step"], 2) for x in d["rows"]}, "verified", d["verified"])
dd = r.get("dedup", {})
if "overall" in dd:
    print("dedup:", {k: round(v["docs_per_s"] or 0) for k, v in dd["stages"].items()}, "docs/s; overall", dd["overall"])
EOF
echo "files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
rm -rf "$WORK"
