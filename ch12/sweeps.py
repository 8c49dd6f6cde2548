"""Tuning sweeps for Chapter 12, timed in one run so the best configuration can be read off.

    python -m ch12.sweeps [--size full] [--out DIR]

- work queue: rows taken per atomic (grain 1-64) for each row-length distribution, beside the static
  partition and one block per row;
- graph chain: launches vs graph replay for chains of 10 to 1000 kernels (where graphs start to pay);
- dynamic parallelism: host passes vs CDP at each image size.
Each figure is the median of CUDA-event-timed calls (device-wide synchronize before the closing event),
and every configuration's output is checked against the baseline's first. Writes DIR/sweeps.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from ch12 import atomic_work_queue as wq
from ch12 import dynamic_parallelism as dp
from ch12 import graph_chain as gc
from ch12.kernels import ext, rdc
from harness.device import provenance


def median_ms(fn, calls: int = 20) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(calls):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        torch.cuda.synchronize()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def work_queue(size: str) -> list[dict]:
    rows = []
    for dist in ("clustered", "powerlaw", "uniform"):
        x = wq.setup(size, torch.device("cuda"), 0, dist=dist)
        base = ext().rows_sum(x["values"], x["offsets"], "static", 1)
        configs = [("static", 1), ("block_per_row", 1)] + [("dynamic", g) for g in (1, 2, 4, 8, 16, 32, 64)]
        for name, grain in configs:
            fn = lambda name=name, grain=grain: ext().rows_sum(x["values"], x["offsets"], name, grain)  # noqa: E731
            rows.append({"dist": dist, "schedule": name, "grain": grain, "same_as_static": bool(torch.equal(fn(), base)),
                         "ms": median_ms(fn)})
    return rows


def graph_chain() -> list[dict]:
    rows = []
    for n in (10, 50, 200, 1000):
        x = {"x": torch.randn(1, device="cuda"), "n": n}
        eager, replay = gc.chain("eager"), gc.chain("graph_replay")
        ok = bool(torch.equal(eager(x), replay(x)))
        e_ms, r_ms = median_ms(lambda: eager(x)), median_ms(lambda: replay(x))
        rows.append({"kernels": n, "launches_ms": e_ms, "graph_replay_ms": r_ms, "speedup": e_ms / r_ms,
                     "us_per_kernel_launches": 1e3 * e_ms / n, "us_per_kernel_replay": 1e3 * r_ms / n, "same": ok})
    return rows


def cdp(sizes: list[str]) -> list[dict]:
    rows = []
    for size in sizes:
        args = dp._args(dp.setup(size, torch.device("cuda"), 0))
        host = lambda: ext().mariani_silver_multipass(*args)  # noqa: E731
        dev = lambda: rdc().mariani_silver_cdp(*args)  # noqa: E731
        ok = bool(torch.equal(host(), dev()))
        h_ms, d_ms = median_ms(host, 10), median_ms(dev, 10)
        rows.append({"size": size, "pixels": args[0] ** 2, "host_multipass_ms": h_ms, "cdp_ms": d_ms,
                     "cdp_speedup": h_ms / d_ms, "same": ok})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "small", "full"), default="full")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("sweeps: needs a CUDA GPU", file=sys.stderr)
        return 2
    report = {"provenance": provenance(torch.device("cuda"), size=args.size), "errors": {}}
    sections = {"work_queue": lambda: work_queue(args.size), "graph_chain": graph_chain,
                "cdp": lambda: cdp(["small", args.size] if args.size != "small" else ["small"])}
    for name, fn in sections.items():
        try:
            report[name] = fn()
        except Exception as exc:  # one broken section must not lose the others
            report["errors"][name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            print(f"sweeps: {name} failed: {report['errors'][name]}")
    for r in report.get("graph_chain", []):
        print(f"graph chain n={r['kernels']:5d}: launches {r['us_per_kernel_launches']:.2f} us/kernel, "
              f"replay {r['us_per_kernel_replay']:.2f} us/kernel, {r['speedup']:.2f}x, same={r['same']}")
    best = {}
    for r in report.get("work_queue", []):
        if r["schedule"] == "dynamic" and (r["dist"] not in best or r["ms"] < best[r["dist"]]["ms"]):
            best[r["dist"]] = r
    for dist, r in best.items():
        static = next(s for s in report["work_queue"] if s["dist"] == dist and s["schedule"] == "static")
        print(f"work queue {dist}: best grain {r['grain']} {r['ms']:.3f} ms vs static {static['ms']:.3f} ms")
    for r in report.get("cdp", []):
        print(f"cdp {r['size']}: host passes {r['host_multipass_ms']:.3f} ms, cdp {r['cdp_ms']:.3f} ms, same={r['same']}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sweeps.json").write_text(json.dumps(report, indent=1))
    same = all(r.get("same", r.get("same_as_static", True)) for key in ("work_queue", "graph_chain", "cdp")
               for r in report.get(key, []))
    return 0 if same and not report["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
