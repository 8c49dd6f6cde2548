"""GEMM kernels of this chapter vs cuBLAS over square sizes, on a GPU: TFLOP/s and ratio to cuBLAS.

Not an example (the harness times ch9/sgemm_tiling.py and ch9/wmma_gemm.py at their fixed sizes); this shows
how the ratio moves with size. Each kernel is checked against cuBLAS once per size before it is timed.
    python3 -m ch9.gemm_sweep [--out sweep.json] [--sizes 1024 2048 4096 8192]
"""
import argparse
import json
import sys

import torch


def time_ms(fn, reps=10):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gemm_sweep: needs a CUDA GPU", file=sys.stderr)
        return 2
    from ch9.kernels import ext

    torch.backends.cuda.matmul.allow_tf32 = False  # this process only: cuBLAS fp32 is SGEMM
    rows = []
    for n in args.sizes:
        g = torch.Generator(device="cuda").manual_seed(n)
        a = torch.randn(n, n, device="cuda", generator=g) * n ** -0.25
        b = torch.randn(n, n, device="cuda", generator=g) * n ** -0.25
        cases = {"fp32": (a, b, {"cublas_fp32": torch.mm, "register_tiles": ext().sgemm_regtile,
                                 "register_tiles_vec4": ext().sgemm_regtile_vec4}),
                 "bf16": (a.bfloat16(), b.bfloat16(), {"cublas_bf16": torch.mm, "simt_bf16": ext().gemm_bf16_simt,
                                                       "wmma": ext().gemm_bf16_wmma})}
        for dtype, (x, y, fns) in cases.items():
            want = torch.mm(x, y).float()
            cublas_ms = None
            for name, fn in fns.items():
                err = ((fn(x, y).float() - want).norm() / want.norm()).item()
                ms = time_ms(lambda fn=fn, x=x, y=y: fn(x, y))
                cublas_ms = cublas_ms or ms
                row = {"n": n, "dtype": dtype, "kernel": name, "ms": ms, "tflops": 2 * n**3 / ms / 1e9,
                       "vs_cublas": cublas_ms / ms, "rel_l2_err": err}
                rows.append(row)
                print(f"{n:6d} {dtype} {name:22s} {ms:9.3f} ms {row['tflops']:7.1f} TFLOP/s "
                      f"{row['vs_cublas']:5.2f}x cuBLAS  err {err:.1e}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
