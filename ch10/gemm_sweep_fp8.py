"""The FP8 Hopper GEMM kernels checked, then timed beside torch._scaled_mm at 4096^3 and 8192^3.

Not an example (the harness times ch10/hopper_gemm_fp8.py at one size); this gives the goal's two ratios,
localises a failure, and measures how far each result is from the exact one. It mirrors gemm_sweep.py: each
kernel runs in its own child process with a deadline, so a kernel that hangs (an mbarrier waiting for a phase
that never completes) is reported as `hung` and the others still run. In the child a kernel is first compared
on small and ragged shapes (one tile; a partial tile with K = 16; several k-blocks with partial ones; more
tiles than SMs; a long K) with the exact result, (A @ B^T in fp32 of the e4m3 values, whose products are
exact) * scales, and with both torch._scaled_mm modes; it is timed only if every check passed.
    python3 -m ch10.gemm_sweep_fp8 [--size tiny|small|full] [--json OUT] [--png PLOT]
With --profile, each kernel named by --kernels and both torch._scaled_mm modes run exactly once at the first
size, nothing else (for `ncu --kernel-name regex:gemm|nvjet|xmma|sm90`: one launch each to profile).
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from ch10 import gemm_sweep
from ch10.gemm_sweep import time_ms

KERNELS = ("gemm_fp8_pipelined", "gemm_fp8_ws_persistent", "gemm_fp8_ws_persistent_mma_overlap")
SIZES = {"tiny": [256], "small": [1024, 2048], "full": [4096, 8192]}
# (m, n, k): one tile, a partial tile with one partial K-block, ragged edges with several k-blocks (odd N, then N
# a multiple of 16 so that torch._scaled_mm takes it too), more tiles than the H200's 132 SMs, a long K (the
# accumulation error grows with it)
CHECK_SHAPES = [(128, 256, 128), (64, 100, 16), (200, 300, 144), (1000, 777, 528), (333, 784, 400),
                (2048, 2304, 1024), (256, 512, 8192)]
RTOL, ATOL = 1.6e-2, 4e-2  # the example's tolerance (its docstring says why); C ~ N(0, 1) by the scales
CHILD_DEADLINE_S = 90


def inputs(m, n, k, seed):
    from ch10.hopper_gemm_fp8 import fp8_inputs

    return fp8_inputs(m, n, k, "cuda", torch.Generator(device="cuda").manual_seed(seed))


def exact(x):
    """fp32 A @ B^T of the e4m3 values (TF32 off), times both scales: exact products, fp32 sums."""
    return (x["a"].float() @ x["b"].float().T) * (x["scale_a"] * x["scale_b"])


def scaled_mm(x, fast_accum):
    return torch._scaled_mm(x["a"], x["b"].t(), scale_a=x["scale_a"], scale_b=x["scale_b"],
                            out_dtype=torch.bfloat16, use_fast_accum=fast_accum)


def reference_or_none(x, fast_accum):
    """torch._scaled_mm's result in fp32, or None where it refuses the shape (N and K must be multiples of 16)."""
    if x["b"].shape[0] % 16:
        return None
    try:
        return scaled_mm(x, fast_accum).float()
    except RuntimeError as exc:  # recorded by its absence; our kernel's check against the exact result stands
        print(f"torch._scaled_mm refused {tuple(x['a'].shape)} x {tuple(x['b'].shape)}: {exc}", file=sys.stderr)
        return None


def compare(got, want):
    bad = ~torch.isclose(got, want, rtol=RTOL, atol=ATOL)
    return int(bad.sum()), float((got - want).abs().max())


def check_and_time(name: str, sizes: list[int]) -> dict:
    """In the child: correctness on CHECK_SHAPES, then ms and TFLOP/s vs torch._scaled_mm at each size."""
    from ch10.kernels import ext

    torch.backends.cuda.matmul.allow_tf32 = False
    fn = getattr(ext(), name)
    call = lambda x: fn(x["a"], x["b"], x["scale_a"], x["scale_b"])  # noqa: E731
    checks = []
    for i, (m, n, k) in enumerate(CHECK_SHAPES):
        x = inputs(m, n, k, seed=i)
        got, want = call(x).float(), exact(x)
        mismatched, err = compare(got, want)
        check = {"shape": [m, n, k], "ok": mismatched == 0, "mismatched": mismatched, "max_abs_err": err}
        for mode, fast in (("scaled_mm", False), ("scaled_mm_fast_accum", True)):
            ref = reference_or_none(x, fast)
            check[f"max_abs_err_vs_{mode}"] = compare(got, ref)[1] if ref is not None else None
            check[f"{mode}_max_abs_err"] = compare(ref, want)[1] if ref is not None else None  # its own error
        torch.cuda.synchronize()
        checks.append(check)
    result = {"kernel": name, "checks": checks, "correct": all(c["ok"] for c in checks), "rows": []}
    if not result["correct"]:
        return result
    for n in sizes:
        x = inputs(n, n, n, seed=n)
        got = call(x).float()
        ok = compare(got, exact(x))[0] == 0
        ms = time_ms(lambda x=x: call(x))
        ref_ms = time_ms(lambda x=x: scaled_mm(x, False))
        fast_ms = time_ms(lambda x=x: scaled_mm(x, True))
        tf = lambda t, n=n: 2 * n**3 / t / 1e9  # noqa: E731
        result["rows"].append({"n": n, "ok": ok, "ms": ms, "tflops": tf(ms), "scaled_mm_ms": ref_ms,
                               "scaled_mm_tflops": tf(ref_ms), "fast_accum_ms": fast_ms,
                               "fast_accum_tflops": tf(fast_ms),
                               "vs_scaled_mm": ref_ms / ms if ok else 0.0,
                               "vs_fastest_reference": min(ref_ms, fast_ms) / ms if ok else 0.0})
        del x, got
    return result


def plot(results: list[dict], path: str) -> None:
    gemm_sweep.plot(results, path, lines=(("scaled_mm_tflops", "--"), ("fast_accum_tflops", ":")),
                    ylabel="TFLOP/s (FP8 e4m3)",
                    title="Hopper FP8 GEMM vs torch._scaled_mm (dashed; dotted: fast accum)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument("--sizes", type=int, nargs="+", help="square sizes, multiples of 16 (overrides --size)")
    p.add_argument("--json", default=None)
    p.add_argument("--png", default=None)
    p.add_argument("--child", choices=KERNELS, help=argparse.SUPPRESS)
    p.add_argument("--profile", action="store_true", help="one call of each kernel and of torch._scaled_mm, for ncu")
    p.add_argument("--kernels", nargs="*", choices=KERNELS, default=list(KERNELS))
    args = p.parse_args(argv)
    sizes = args.sizes or SIZES[args.size]
    if any(n <= 0 or n % 16 for n in sizes):
        print("gemm_sweep_fp8: sizes must be positive multiples of 16 (TMA's 16-byte row stride)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("gemm_sweep_fp8: needs a Hopper GPU (sm_90: FP8 wgmma and TMA)", file=sys.stderr)
        return 2
    if args.profile:
        from ch10.kernels import ext

        x = inputs(sizes[0], sizes[0], sizes[0], seed=0)
        for name in args.kernels:
            getattr(ext(), name)(x["a"], x["b"], x["scale_a"], x["scale_b"])
        scaled_mm(x, False)
        scaled_mm(x, True)
        torch.cuda.synchronize()
        return 0
    if args.child:
        print(json.dumps(check_and_time(args.child, sizes)))
        return 0
    from harness.device import provenance

    results, where = [], provenance(torch.device("cuda"))

    def save():  # after every kernel: a run cut short still leaves what it found
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"provenance": where, "sizes": sizes, "rtol": RTOL, "atol": ATOL,
                           "results": results}, f, indent=1)

    for name in args.kernels:
        r = gemm_sweep.run_child("ch10.gemm_sweep_fp8", name, ["--sizes", *map(str, sizes)], CHILD_DEADLINE_S)
        results.append(r)
        save()
        status = "correct" if r.get("correct") else r.get("error", "WRONG: " + json.dumps(r.get("checks")))
        print(f"{name:36s} {status}")
        for c in r.get("checks", []):
            refs = "" if c.get("scaled_mm_max_abs_err") is None else (
                f", {c['max_abs_err_vs_scaled_mm']:.2e} vs _scaled_mm; _scaled_mm's own {c['scaled_mm_max_abs_err']:.2e}"
                f", fast accum's {c['scaled_mm_fast_accum_max_abs_err']:.2e}")
            print(f"  check {c['shape']}: {c['mismatched']} mismatched, max |err| {c['max_abs_err']:.2e} vs exact{refs}")
        for row in r.get("rows", []):
            print(f"  {row['n']:6d}^3 {row['ms']:8.3f} ms {row['tflops']:7.1f} TFLOP/s  _scaled_mm "
                  f"{row['scaled_mm_tflops']:7.1f} (fast accum {row['fast_accum_tflops']:7.1f})  ratio "
                  f"{row['vs_scaled_mm']:.2f} ({row['vs_fastest_reference']:.2f} vs the faster)"
                  f"{'' if row['ok'] else '  MISMATCH'}")
    if args.png:
        plot(results, args.png)
    return 0 if all(r.get("correct") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
