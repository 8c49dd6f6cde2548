"""The layer-chain kernels of ch10/persistent_megakernel.py checked, then timed, each in its own process.

Not an example (the harness verifies and times ch10/persistent_megakernel.py); this localises a failure
before the harness runs. A persistent kernel written wrong hangs (a block waiting at a barrier for
blocks that never come) or traps (the split barrier's spin gives up after ~2 s), and a trap poisons the
process's CUDA context: so each kernel runs in a child process with a deadline, is compared with the
PyTorch chain on small and ragged shapes and on each input distribution, and only then timed (CUDA
events, median of 50 calls on the same inputs) at the example's sizes.
    python3 -m ch10.megakernel_check [--size small|full] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from ch10 import gemm_sweep

KERNELS = ("per_layer", "graph", "grid_sync", "split_barrier")
# (batch, width, layers): one element, a ragged width (scalar path), one row per warp, two rows per warp,
# a width with a partial float4 step per lane
CHECK_SHAPES = [(1, 1, 1), (3, 61, 5), (8, 1024, 9), (2, 2048, 4), (8, 4100, 2)]
RTOL, ATOL = 1e-4, 1e-4  # the harness's float32 tolerance
CHILD_DEADLINE_S = 60


def check_and_time(kernel: str, sizes: list[str]) -> dict:
    """In the child: correctness against torch_chain, then microseconds per call at each size."""
    from ch10.kernels import ext
    from ch10.persistent_megakernel import EXAMPLE, setup, torch_chain

    fn = getattr(ext(), f"tanh_chain_{kernel}")
    cases = [(f"{b}x{w}x{n}", setup_shape(b, w, n, seed=i)) for i, (b, w, n) in enumerate(CHECK_SHAPES)]
    cases += [(f"small/{d}", setup("small", torch.device("cuda"), 7, dist=d)) for d in EXAMPLE.distributions]
    checks = []
    for label, x in cases:
        got, want = fn(x["x"], x["w"], x["b"]), torch_chain(x)
        torch.cuda.synchronize()
        bad = ~torch.isclose(got, want, rtol=RTOL, atol=ATOL)
        same = torch.equal(got, ext().tanh_chain_per_layer(x["x"], x["w"], x["b"]))
        checks.append({"case": label, "ok": not bad.any().item(), "mismatched": int(bad.sum()),
                       "max_abs_err": float((got - want).abs().max()), "bitwise_as_per_layer": same})
    result = {"kernel": kernel, "checks": checks, "correct": all(c["ok"] for c in checks), "rows": []}
    if not result["correct"]:
        return result
    for size in sizes:
        x = setup(size, torch.device("cuda"), 11)
        us = time_us(lambda x=x: fn(x["x"], x["w"], x["b"]))
        layers = x["w"].shape[0]
        result["rows"].append({"size": size, "batch": x["x"].shape[0], "width": x["x"].shape[1], "layers": layers,
                               "us": us, "us_per_layer": us / layers,
                               "gbps": EXAMPLE.bytes_moved(x) / us / 1e3})
    return result


def setup_shape(batch: int, width: int, layers: int, seed: int) -> dict:
    g = torch.Generator(device="cuda").manual_seed(seed)
    return {"x": torch.randn(batch, width, device="cuda", generator=g),
            "w": torch.randn(layers, width, width, device="cuda", generator=g) * width ** -0.5,
            "b": torch.randn(layers, width, device="cuda", generator=g) * 0.5}


def time_us(fn, reps: int = 50) -> float:
    return gemm_sweep.time_ms(fn, reps=reps, warmup=3) * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=("tiny", "small", "full"), default="full")
    p.add_argument("--json", default=None)
    p.add_argument("--child", choices=KERNELS, help=argparse.SUPPRESS)
    p.add_argument("--sizes", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("megakernel_check: needs a CUDA GPU", file=sys.stderr)
        return 2
    sizes = args.sizes if args.sizes is not None else {"tiny": ["tiny"], "small": ["small"],
                                                      "full": ["small", "full"]}[args.size]
    if args.child:
        print(json.dumps(check_and_time(args.child, sizes)))
        return 0
    from harness.device import provenance

    results = [gemm_sweep.run_child("ch10.megakernel_check", k, ["--sizes", *sizes], CHILD_DEADLINE_S) for k in KERNELS]
    base = {row["size"]: row["us"] for r in results if r["kernel"] == "per_layer" for row in r.get("rows", [])}
    for r in results:
        status = "correct" if r.get("correct") else r.get("error", "WRONG: " + json.dumps(r.get("checks")))
        print(f"{r['kernel']:14s} {status}")
        for row in r.get("rows", []):
            if row["size"] in base:
                row["speedup_vs_per_layer"] = base[row["size"]] / row["us"]
            print(f"  {row['size']:5s} {row['us']:8.1f} us  {row['us_per_layer']:6.2f} us/layer  "
                  f"{row['gbps']:6.0f} GB/s  x{row.get('speedup_vs_per_layer', float('nan')):.2f} vs per_layer")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"provenance": provenance(torch.device("cuda")), "sizes": sizes, "results": results}, f,
                      indent=1)
    return 0 if all(r.get("correct") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
