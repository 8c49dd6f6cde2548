# Shared by the chapters' gpu_check.sh scripts; sourced from the repository root. It sets OUT (default
# ./gpu_check_out), PY, TMP (removed on exit), LOG ($OUT/summary.txt), the list `failed` and:
#   size_option "$@"      SIZE from `--size full|small|tiny` (default full); anything else exits 2
#   step NAME CMD...      run, log to LOG, remember a failure, go on
#   timed NAME LIMIT CMD... `step` under a timeout of min(LIMIT, what BUDGET_S has left since the script started);
#                         with under 20 s left the step is listed in `skipped` instead (not a failure). A script
#                         sets its own default budget (BUDGET_S=${BUDGET_S:-300}); the caller may give more.
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
LOG="$OUT/summary.txt"
: >"$LOG"
failed=()

size_option() {
    SIZE=full
    [ "${1:-}" = "--size" ] && SIZE=${2:-full}
    case "$SIZE" in full|small|tiny) ;; *) echo "gpu_check.sh: --size must be full, small or tiny" >&2; exit 2 ;; esac
}

step() {
    local name=$1; shift
    echo "=== $name: $*" | tee -a "$LOG"
    local t0=$SECONDS
    "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

skipped=()
timed() {
    local name=$1 limit=$2; shift 2
    local left=$(( ${BUDGET_S:-100000} - SECONDS ))
    if [ "$left" -lt 20 ]; then
        echo "=== $name: skipped (the ${BUDGET_S} s budget is spent; BUDGET_S=... gives more)" | tee -a "$LOG"
        skipped+=("$name")
        return
    fi
    step "$name" timeout "$(( limit < left ? limit : left ))" "$@"
}
