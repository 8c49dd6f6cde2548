"""Graph breaks: found with `torch._dynamo.explain`, removed, and what removing them is worth.

    python -m ch14.graph_breaks [--size tiny|small|full] [--backend inductor] [--json OUT]

Dynamo turns a Python function into FX graphs by tracing it; what it cannot put in a graph (a tensor's
value read on the host, a Python branch on that value, a call into code it must not trace) ends the graph:
the code around it runs in Python, and the compiler sees two smaller graphs instead of one, so nothing
is fused across the break, and each break costs a return to Python (and here a device sync too).

`with_breaks` is a block as one writes it when debugging: it clips activations by their peak read with
`.item()` (a host sync and a data-dependent Python branch), and logs a statistic through a function
marked `torch.compiler.disable` (as a logging or metrics call is). `without_breaks` computes the same:
the branch becomes `torch.where` on a device tensor, the statistic stays a tensor that is returned,
not logged. `torch._dynamo.explain` reports the graphs, the breaks and each break's reason for both.

Timed (on a GPU): eager, compiled with the breaks, compiled without; every output compared with eager's.
Bound: full size is 8192 x 4096 bf16 through a 4096 x 4096 GEMM (0.27 TFLOP, ~0.35 ms at ~790 TFLOP/s)
and ~6 element-wise passes over 64 MiB (~0.1 ms at 4.2 TB/s when fused into the GEMM's neighbours).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

SHAPES = {"tiny": (64, 32), "small": (2048, 1024), "full": (8192, 4096)}  # (rows, width)
LOGGED: list[torch.Tensor] = []


@torch.compiler.disable
def log_stat(value: torch.Tensor) -> None:
    """A metrics call: Dynamo must not trace into it (it would be compiled away), so it breaks the graph."""
    LOGGED.append(value.detach())


def with_breaks(x, w):
    h = F.gelu(x @ w)
    peak = h.abs().amax()
    if peak.item() > 4.0:                  # break: the value is read on the host, and Python branches on it
        h = h * (4.0 / peak)
    log_stat(h.float().pow(2).mean())      # break: a call Dynamo does not trace
    return F.layer_norm(h, h.shape[-1:]) * 0.5 + x


def without_breaks(x, w):
    h = F.gelu(x @ w)
    peak = h.abs().amax()
    h = torch.where(peak > 4.0, h * (4.0 / peak), h)   # the branch as data: both sides computed, one kept
    return F.layer_norm(h, h.shape[-1:]) * 0.5 + x


def explain(fn, *args) -> dict:
    import torch._dynamo

    torch._dynamo.reset()
    out = torch._dynamo.explain(fn)(*args)
    return {"graphs": out.graph_count, "graph_breaks": out.graph_break_count, "ops": out.op_count,
            "break_reasons": [str(getattr(b, "reason", b)).splitlines()[0][:200] for b in out.break_reasons]}


def inputs(size: str, device: torch.device, seed: int = 0):
    rows, width = SHAPES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    x = torch.randn(rows, width, device=device, generator=g).to(dtype)
    w = (torch.randn(width, width, device=device, generator=g) * 3 / width ** 0.5).to(dtype)  # peaks above 4: clipped
    return x, w


def time_ms(fn, args, device: torch.device, reps: int = 20) -> float:
    for _ in range(3):
        fn(*args)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(*args)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(SHAPES), default="full")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, w = inputs(args.size, device)
    report = {"explain": {"with_breaks": explain(with_breaks, x, w), "without_breaks": explain(without_breaks, x, w)}}
    for name, e in report["explain"].items():
        print(f"{name}: {e['graphs']} graph(s), {e['graph_breaks']} break(s)")
        for reason in e["break_reasons"]:
            print(f"    {reason}")
    torch._dynamo.reset()
    ref = with_breaks(x, w)
    fns = {"eager": with_breaks, "compiled_with_breaks": torch.compile(with_breaks, backend=args.backend),
           "compiled_without_breaks": torch.compile(without_breaks, backend=args.backend)}
    rows, ok = {}, True
    tol = 3e-2 if device.type == "cuda" else 1e-4
    for name, fn in fns.items():
        out = fn(x, w)
        err = float((out.float() - ref.float()).norm() / ref.float().norm())
        rows[name] = {"rel_l2_err_vs_eager": err, "verified": err <= tol, "ms": time_ms(fn, (x, w), device)}
        ok = ok and rows[name]["verified"]
        print(f"{name:>24}: {rows[name]['ms']:.3f} ms, verified {rows[name]['verified']} (rel err {err:.1e})")
    for r in rows.values():
        r["speedup_vs_eager"] = rows["eager"]["ms"] / r["ms"] if r["verified"] else None
    report["timing"] = rows
    LOGGED.clear()
    if args.json:
        from harness.device import provenance

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"provenance": provenance(device, size=args.size, backend=args.backend),
                                         **report}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
