#!/usr/bin/env bash
# The one set-up command: creates .venv and installs the pinned dependencies into it.
# No sudo, no driver or system changes: everything lands in .venv inside this folder.
#
#   ./setup.sh                    install from the package index
#   ./setup.sh --wheelhouse DIR   install from a folder of wheels, with no network (air-gapped GPU nodes)
#
# Where python3 already imports a CUDA-enabled torch (NGC containers, managed GPU nodes), the venv is
# made with --system-site-packages and reuses it instead of downloading another torch.
set -Eeuo pipefail  # -E: the ERR trap below fires inside functions too
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
WHEELHOUSE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --wheelhouse)
            [ -d "${2:-}" ] || { echo "setup.sh: --wheelhouse needs an existing folder of wheels" >&2; exit 2; }
            WHEELHOUSE=$(cd "$2" && pwd); shift 2 ;;
        --python)
            [ -n "${2:-}" ] || { echo "setup.sh: --python needs an interpreter" >&2; exit 2; }
            PY=$2; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

step="start"
trap 'echo "setup.sh: FAILED at step: $step" >&2' ERR
say() { echo "setup.sh: $*"; }

step="check Python"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "setup.sh: needs Python 3.11 or newer; $PY is $("$PY" -V 2>&1)" >&2; exit 1; }

# Quick and idempotent: nothing to do when the same requirements were installed the same way.
stamp=$(cat requirements.txt setup.sh | sha256sum | cut -c1-16)-${WHEELHOUSE:+offline}
if [ -x .venv/bin/python ] && [ "$(cat .venv/.aisp-setup 2>/dev/null)" = "$stamp" ] \
        && .venv/bin/python -c 'import torch' 2>/dev/null; then
    say "already set up ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
    exit 0
fi

step="create .venv"
if [ -x .venv/bin/python ] && [ "$PY" != python3 ]; then
    say "keeping the existing .venv ($(.venv/bin/python -V)); remove it to set up with $PY"
fi
if [ ! -x .venv/bin/python ]; then
    if "$PY" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null; then
        say "reusing $PY's CUDA-enabled torch ($("$PY" -c 'import torch; print(torch.__version__)')): venv with system site-packages"
        "$PY" -m venv --system-site-packages .venv
        # When $PY is itself a venv, "system" means its base interpreter: point at $PY's own packages too.
        site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        "$PY" -c 'import site; print("\n".join(site.getsitepackages()))' > "$site/aisp-reused-torch.pth"
        touch .venv/.aisp-reused-torch
    else
        say "creating .venv"
        "$PY" -m venv .venv
    fi
fi

pip_install() {
    local index=()
    [ -n "$WHEELHOUSE" ] && index=(--no-index --find-links "$WHEELHOUSE")
    .venv/bin/python -m pip install --disable-pip-version-check -q "${index[@]}" "$@"
}

step="install torch and triton"
torch_pin=$(grep -E '^torch==' requirements.txt | cut -d= -f3)
if [ -f .venv/.aisp-reused-torch ] && .venv/bin/python -c 'import torch' 2>/dev/null; then
    say "torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') reused from $PY: keeping it"
elif .venv/bin/python -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$torch_pin')" 2>/dev/null; then
    say "torch $torch_pin already installed"
else
    say "installing $(grep -E '^(torch|triton)==' requirements.txt | tr '\n' ' ')"
    pip_install $(grep -E '^(torch|triton)==' requirements.txt)
fi

step="install requirements"
say "installing the other requirements"
pip_install $(grep -vE '^(#|$|torch==|triton==|holistictraceanalysis==|nvidia-cutlass==)' requirements.txt)
pip_install --no-deps $(grep -E '^(holistictraceanalysis|nvidia-cutlass)==' requirements.txt)

step="make the repository importable"
# A .pth file puts this folder on the venv's path, so `python ch1/<example>.py` finds `harness`.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pwd > "$site/aisp-repo.pth"

step="check"
.venv/bin/python -c 'import torch, harness; print("setup.sh: ready: torch", torch.__version__, "| CUDA GPU:", torch.cuda.is_available())'
echo "$stamp" > .venv/.aisp-setup
