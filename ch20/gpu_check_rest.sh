#!/usr/bin/env bash
# Chapter 20, the rest, on a GPU node, from the repository root. Each part stays under 4 minutes on an H200:
#
#   OUT=/some/dir bash ch20/gpu_check_rest.sh                 # part "rest" (about 3-3.5 minutes)
#   OUT=/some/dir bash ch20/gpu_check_rest.sh --part fastp1   # fast_p over 3 problems (2.5-4 minutes a part;
#   ... --part fastp2, fastp3, fastp4, fastp5                 #  the five parts cover all 14 problems)
#   OUT=/some/dir bash ch20/gpu_check_rest.sh --part merge    # joins $OUT/fastp_part*.json (seconds, any machine)
#
# rest: 1. every search family compiled and checked on the GPU (the gpu tests of tests/test_ch20_rest.py);
# 2. the decomposition checks and Strassen one level vs cuBLAS at 1024-8192 in bf16 (ch20.alphatensor);
# 3. the harness example ch20/strassen_gemm at full size; 4. NVML telemetry for 25 s under a sustained GEMM
# (ch20.telemetry_anomalies); 5. the GRPO policy on a table of measured timings (6 problems x 5 configurations
# at size small, ch20.grpo_policy). fastpN: python -m ch20.evaluate --search over 2-3 problems, 2 verified
# candidates each (full size) and the torch.compile baseline; a part cut off by its 230 s deadline keeps the
# problems it finished (its JSON is written after each). merge also writes $OUT/README_fastp.md: the chapter
# README with its fast_p block replaced by the table (copy it over ch20/README.md to record the run).
# Writes small files only to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_check_lib.sh
PART=rest
[ "${1:-}" = "--part" ] && PART=${2:-rest}
LOG="$OUT/summary_$PART.txt"   # one log per part, so parts can share one $OUT
: >"$LOG"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

fastp() {   # fastp NAME PROBLEMS
    step "$1" timeout -k 10 230 "$PY" -m ch20.evaluate --problems ch20/problems --search "$OUT/fastp" --only "$2" \
        --budget 2 --batch 2 --rounds 6 --trials 3 --timeout 120 --json "$OUT/fastp_$1.json"
}

case "$PART" in
rest)
    step env "$PY" -c 'import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())'
    step family_tests timeout 120 "$PY" -m pytest -q -x tests/test_ch20_rest.py -k on_the_gpu
    step alphatensor timeout 120 "$PY" -m ch20.alphatensor --time --sizes 1024 2048 4096 8192 \
        --json "$OUT/alphatensor.json"
    step strassen_gemm timeout 120 "$PY" -m harness run ch20/strassen_gemm --device cuda --size full \
        --out "$TMP/results" --timeout 100
    [ -f "$TMP/results/results.json" ] && cp "$TMP/results/results.json" "$OUT/strassen_results.json"
    [ -f "$TMP/results/summary.md" ] && cp "$TMP/results/summary.md" "$OUT/strassen_summary.md"
    step telemetry timeout 60 "$PY" -m ch20.telemetry_anomalies --nvml 25 --load-gemm --csv "$OUT/telemetry_gemm.csv" \
        --json "$OUT/telemetry_gemm.json"
    step telemetry_synthetic "$PY" -m ch20.telemetry_anomalies --seeds 10 --json "$OUT/telemetry_synthetic.json"
    step grpo timeout 120 "$PY" -m ch20.grpo_policy --reward measured --size small --max-configs 5 \
        --problems softmax,log_softmax,layernorm,rmsnorm,gelu,bias_gelu \
        --steps 40 --group 6 --budget 3 --json "$OUT/grpo_measured.json" --png "$OUT/grpo_measured.png"
    ;;
fastp1) fastp part1 attention,axpy,bias_gelu ;;
fastp2) fastp part2 gelu,layernorm,linear_bias_relu ;;
fastp3) fastp part3 log_softmax,masked_softmax,matmul ;;
fastp4) fastp part4 residual_layernorm,rmsnorm,row_sum ;;
fastp5) fastp part5 softmax,swiglu ;;
merge)
    step merge "$PY" -m ch20.evaluate --merge "$OUT"/fastp_part*.json --json "$OUT/fastp.json" \
        --markdown "$OUT/fastp_table.md" --readme ch20/README.md --readme-out "$OUT/README_fastp.md"
    ;;
*) echo "gpu_check_rest.sh: --part must be rest, fastp1..fastp5 or merge" >&2; exit 2 ;;
esac

echo "=== summary ($PART): ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}" | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
