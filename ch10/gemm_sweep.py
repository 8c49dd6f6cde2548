"""The Hopper GEMM kernels checked, then timed beside cuBLAS at 4096^3 and 8192^3: TFLOP/s and ratio.

Not an example (the harness times ch10/hopper_gemm.py at one size); this gives the goal's two ratios and
localises a failure. Each kernel runs in its own child process with a deadline, so a kernel that hangs
(an mbarrier waiting for a phase that never completes) is reported as `hung` and the others still run.
In the child, a kernel is first compared with cuBLAS on small shapes (one tile, ragged edges, many
k-blocks), then timed at each size only if all of them matched.
    python3 -m ch10.gemm_sweep [--size tiny|small|full] [--json OUT] [--png PLOT]
With --profile, each kernel named by --kernels and cuBLAS run exactly once at the first size, nothing else
(for `ncu --kernel-name regex:gemm|nvjet|xmma`: one launch each to profile).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

KERNELS = ("gemm_tma_wgmma_1stage", "gemm_tma_wgmma_pipelined", "gemm_warp_specialized",
           "gemm_warp_specialized_persistent", "gemm_ws_persistent_mma_overlap")
SIZES = {"tiny": [256], "small": [1024, 2048], "full": [4096, 8192]}
# (m, n, k): one tile, a partial tile, ragged edges with several k-blocks, more tiles than SMs
CHECK_SHAPES = [(128, 256, 64), (64, 100, 8), (200, 300, 72), (1000, 777, 520), (2048, 2304, 1024)]
RTOL, ATOL = 1.6e-2, 1e-2  # the harness's bf16 tolerance; C ~ N(0, 1) by the inputs' scaling
CHILD_DEADLINE_S = 90


def inputs(m, n, k, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    scale = k ** -0.25
    a = (torch.randn(m, k, device="cuda", generator=g) * scale).to(torch.bfloat16)
    b = (torch.randn(n, k, device="cuda", generator=g) * scale).to(torch.bfloat16)
    return a, b


def time_ms(fn, reps=10, warmup=1):
    """Median of `reps` CUDA-event timings of fn() in ms, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]  # median


def check_and_time(name: str, sizes: list[int]) -> dict:
    """In the child: correctness on CHECK_SHAPES, then ms and TFLOP/s vs cuBLAS at each size."""
    from ch10.kernels import ext

    fn = getattr(ext(), name)
    checks = []
    for i, (m, n, k) in enumerate(CHECK_SHAPES):
        a, b = inputs(m, n, k, seed=i)
        got, want = fn(a, b).float(), (a @ b.T).float()
        torch.cuda.synchronize()
        bad = ~torch.isclose(got, want, rtol=RTOL, atol=ATOL)
        checks.append({"shape": [m, n, k], "ok": not bad.any().item(), "mismatched": int(bad.sum()),
                       "max_abs_err": float((got - want).abs().max())})
    result = {"kernel": name, "checks": checks, "correct": all(c["ok"] for c in checks), "rows": []}
    if not result["correct"]:
        return result
    for n in sizes:
        a, b = inputs(n, n, n, seed=n)
        got, want = fn(a, b).float(), (a @ b.T).float()
        ok = bool(torch.isclose(got, want, rtol=RTOL, atol=ATOL).all())
        ms = time_ms(lambda a=a, b=b: fn(a, b))
        cublas_ms = time_ms(lambda a=a, b=b: a @ b.T)
        result["rows"].append({"n": n, "ok": ok, "ms": ms, "tflops": 2 * n**3 / ms / 1e9, "cublas_ms": cublas_ms,
                               "cublas_tflops": 2 * n**3 / cublas_ms / 1e9, "vs_cublas": cublas_ms / ms if ok else 0.0})
    return result


def run_child(module: str, name: str, args: list[str], deadline_s: float = CHILD_DEADLINE_S) -> dict:
    """`python -m module --child name args...` in its own process (a kernel that hangs or traps takes its CUDA
    context with it): the last JSON line it prints, or why there is none."""
    cmd = [sys.executable, "-m", module, "--child", name, *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline_s, env=os.environ.copy())
    except subprocess.TimeoutExpired:  # run() kills the child before raising
        return {"kernel": name, "correct": False, "error": f"hung: no result within {deadline_s:g} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"kernel": name, "correct": False, "error": f"exit {p.returncode}: {tail}"}
    return json.loads(lines[-1])


BF16_LINES = (("cublas_tflops", "--"),)


def plot(results: list[dict], path: str, lines=BF16_LINES, ylabel: str = "TFLOP/s (bf16)",
         title: str = "Hopper GEMM steps vs cuBLAS (dashed)") -> None:
    """TFLOP/s per kernel and size as bars; `lines`: (row field, line style) of the references, drawn across."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"{title}: matplotlib missing, no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    timed = [r for r in results if r.get("rows")]
    sizes = sorted({row["n"] for r in timed for row in r["rows"]})
    width = 0.8 / max(len(timed), 1)
    for i, r in enumerate(timed):
        xs = [sizes.index(row["n"]) + i * width for row in r["rows"]]
        ax.bar(xs, [row["tflops"] for row in r["rows"]], width, label=r["kernel"].removeprefix("gemm_"))
    for r in timed[:1]:
        for row in r["rows"]:
            j = sizes.index(row["n"])
            for field, style in lines:
                ax.hlines(row[field], j - 0.1, j + 0.9, colors="k", linestyles=style)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))], [f"{n}^3" for n in sizes])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument("--sizes", type=int, nargs="+", help="square sizes (overrides --size)")
    p.add_argument("--json", default=None)
    p.add_argument("--png", default=None)
    p.add_argument("--child", choices=KERNELS, help=argparse.SUPPRESS)
    p.add_argument("--profile", action="store_true", help="one call of each kernel and of cuBLAS, for ncu")
    p.add_argument("--kernels", nargs="*", choices=KERNELS, default=list(KERNELS))
    args = p.parse_args(argv)
    sizes = args.sizes or SIZES[args.size]
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("gemm_sweep: needs a Hopper GPU (sm_90: wgmma and TMA)", file=sys.stderr)
        return 2
    if args.profile:
        from ch10.kernels import ext

        a, b = inputs(sizes[0], sizes[0], sizes[0], seed=0)
        for name in args.kernels:
            getattr(ext(), name)(a, b)
        a @ b.T
        torch.cuda.synchronize()
        return 0
    if args.child:
        print(json.dumps(check_and_time(args.child, sizes)))
        return 0
    from harness.device import provenance

    results = []
    for name in KERNELS:
        r = run_child("ch10.gemm_sweep", name, ["--sizes", *map(str, sizes)])
        results.append(r)
        status = "correct" if r.get("correct") else r.get("error", "WRONG: " + json.dumps(r.get("checks")))
        print(f"{name:34s} {status}")
        for row in r.get("rows", []):
            print(f"  {row['n']:6d}^3 {row['ms']:8.3f} ms {row['tflops']:7.1f} TFLOP/s  cuBLAS "
                  f"{row['cublas_tflops']:7.1f}  ratio {row['vs_cublas']:.2f}{'' if row['ok'] else '  MISMATCH'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"provenance": provenance(torch.device("cuda")), "sizes": sizes, "results": results}, f,
                      indent=1)
    if args.png:
        plot(results, args.png)
    return 0 if all(r.get("correct") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
