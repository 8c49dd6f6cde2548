#!/usr/bin/env bash
# The SASS difference behind ch9/inline_ptx_loads.py (and the instruction mix of the GEMM kernels):
# prints the global load/store instructions of both axpy kernels, then counts FFMA vs HMMA per GEMM kernel.
#   ch9/show_sass.sh [sm_90]      # from the built extension if there is one (build/extensions/aisp_ch9_kernels-*),
#                                 # else from a cubin nvcc compiles now (no GPU needed)
set -u
ARCH="${1:-sm_90}"
cd "$(dirname "$0")/.."
NVCC="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
command -v "$NVCC" >/dev/null 2>&1 || NVCC=nvcc
CUOBJDUMP="$(command -v cuobjdump || true)"
[ -z "$CUOBJDUMP" ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump" ] && CUOBJDUMP="${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump"
if [ -z "$CUOBJDUMP" ]; then  # triton ships one
  CUOBJDUMP="$(python3 -c 'import triton, os; print(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/cuobjdump"))' 2>/dev/null || true)"
fi
[ -x "$CUOBJDUMP" ] || { echo "show_sass: no cuobjdump found (CUDA toolkit or triton)" >&2; exit 2; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
sass_of() {  # $1: .cu stem; SASS text on stdout
  local so
  so="$(ls -t build/extensions/aisp_ch9_kernels-*/aisp_ch9_kernels.so 2>/dev/null | head -1)"
  if [ -n "$so" ]; then
    "$CUOBJDUMP" -sass "$so"
  else
    "$NVCC" -cubin -O3 -std=c++17 -I harness/include -gencode="arch=compute_${ARCH#sm_},code=$ARCH" \
      "ch9/kernels/$1.cu" -o "$TMP/$1.cubin" && "$CUOBJDUMP" -sass "$TMP/$1.cubin"
  fi
}

echo "== $("$NVCC" --version | tail -1); target $ARCH"
echo "== axpy: plain C++ loads (axpy<false>) vs inline PTX ld.global.nc.L1::no_allocate (axpy<true>)"
sass_of inline_ptx | awk '
  /Function :/ { kernel = ($0 ~ /axpyILb1E/) ? "ptx_no_allocate" : ($0 ~ /axpyILb0E/) ? "plain_loads" : ""; next }
  kernel != "" && /(LDG|STG)/ { sub(/;.*/, ";"); gsub(/^ +/, ""); print kernel ": " $0 }'
echo "== GEMM kernels: FP32 FMAs vs tensor-core MMAs per kernel (static instruction counts)"
for stem in sgemm wmma_gemm; do
  sass_of "$stem" | awk '
    /Function :/ { if (name) printf "%-70s FFMA %5d  HMMA %4d\n", name, ffma, hmma; name = $3; ffma = hmma = 0; next }
    /FFMA/ { ffma++ } /HMMA/ { hmma++ }
    END { if (name) printf "%-70s FFMA %5d  HMMA %4d\n", name, ffma, hmma }'
done | sort -u
