"""The stream pipeline's overlap, measured from a torch profiler trace, and its timeline picture.

    python -m ch11.overlap_trace --out DIR [--size full] [--sweep] [--keep-traces]

For one stream and for 2, 3 and 4 streams (ch11/stream_overlap.py), it times the pipeline (median of
a few calls), profiles one more call with torch.profiler, and reads from that trace how much of the
copy time ran under a kernel (ch11/timeline.py). Writes DIR/overlap.json (every figure, with the run's
provenance) and DIR/overlap_timeline.png (one stream above the fastest multi-stream run, same time
scale). `--sweep` also varies the compute per chunk (1 and 4 matmuls) and the stream count (1-8), so
the compute:copy ratio where streams pay off can be read from one run. Needs a CUDA GPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ch11 import stream_overlap as so
from ch11 import timeline
from harness.device import provenance

STREAM_COUNTS = (1, 2, 3, 4)


def variant(n_streams: int):
    return so.one_stream if n_streams == 1 else so.streams(n_streams)


def median_ms(fn, x, calls: int) -> float:
    times = []
    for _ in range(calls):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def profiled_ops(fn, x, trace_path: Path) -> list[timeline.GpuOp]:
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    # GPU activity only: recording every CPU op too would slow the host enough to change the overlap.
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn(x)
        torch.cuda.synchronize()
    prof.export_chrome_trace(str(trace_path))
    return timeline.gpu_ops(timeline.load_trace(trace_path))


def measure(size: str, n_streams: int, matmuls: int, trace_dir: Path, calls: int = 7, seed: int = 0) -> dict:
    device = torch.device("cuda")
    x = so.setup(size, device, seed, matmuls=matmuls)
    fn = variant(n_streams)
    for _ in range(2):  # warm-up: pinned output buffer, cuBLAS handles, streams
        out = fn(x)
    expected = so.one_stream(x)
    ok = bool(torch.equal(out, expected)) or bool(torch.allclose(out, expected, rtol=1e-4, atol=1e-4))
    ms = median_ms(fn, x, calls)
    trace = trace_dir / f"trace_s{n_streams}_m{matmuls}.json"
    ops = profiled_ops(fn, x, trace)
    summary = timeline.overlap_summary(ops)
    return {"streams": n_streams, "matmuls": matmuls, "median_ms": ms, "matches_one_stream": ok,
            "trace": str(trace), **summary, "_ops": ops}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", choices=so.SIZES, default="full")
    parser.add_argument("--sweep", action="store_true", help="also try 1 and 4 matmuls per chunk on 1-8 streams")
    parser.add_argument("--keep-traces", action="store_true", help="keep the Chrome traces in --out")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("overlap_trace: needs a CUDA GPU", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"overlap_trace: cannot write to {args.out}: {exc}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        trace_dir = args.out if args.keep_traces else Path(tmp)
        runs = [measure(args.size, n, so.MATMULS_PER_CHUNK, trace_dir) for n in STREAM_COUNTS]
        sweep = []
        if args.sweep:
            for matmuls in (1, 4):          # 2 is the main runs above
                for n in (1, 2, 3, 4, 8):
                    r = measure(args.size, n, matmuls, trace_dir, calls=5)
                    sweep.append({k: v for k, v in r.items() if k not in ("_ops", "trace", "by_direction")})
        base = runs[0]
        best = min(runs[1:], key=lambda r: r["median_ms"])
        png = timeline.draw(
            [(f"one stream: {base['median_ms']:.2f} ms, {_pct(base['overlap_fraction'])} of copy time under compute",
              base["_ops"]),
             (f"{best['streams']} streams: {best['median_ms']:.2f} ms, "
              f"{_pct(best['overlap_fraction'])} of copy time under compute", best["_ops"])],
            args.out / "overlap_timeline.png",
            title=f"ch11 stream_overlap ({args.size}, {so.MATMULS_PER_CHUNK} matmuls per chunk): "
                  f"{torch.cuda.get_device_name()}")
        report = {
            "provenance": provenance(torch.device("cuda"), size=args.size),
            "what": "chunked H2D -> compute -> D2H pipeline (ch11/stream_overlap.py); overlap_fraction is the "
                    "share of copy time during which a kernel ran, read from a torch profiler trace",
            "speedup": base["median_ms"] / best["median_ms"],
            "best_streams": best["streams"],
            "overlap_fraction": best["overlap_fraction"],
            "runs": [{k: v for k, v in r.items() if k not in ("_ops", "trace")} for r in runs],
            "sweep": sweep,
            "timeline": png.name,
        }
    (args.out / "overlap.json").write_text(json.dumps(report, indent=1))
    for r in runs:
        print(f"streams={r['streams']}: {r['median_ms']:.3f} ms, overlap {_pct(r['overlap_fraction'])} "
              f"(hideable {_pct(r['hideable'])}), matches one stream: {r['matches_one_stream']}")
    print(f"overlap_trace: {report['speedup']:.2f}x with {best['streams']} streams; "
          f"{_pct(best['overlap_fraction'])} of copy time hidden under compute; wrote {args.out}/overlap.json, {png.name}")
    return 0 if all(r["matches_one_stream"] for r in runs) else 1


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


if __name__ == "__main__":
    sys.exit(main())
