"""Time every configuration of the memory-bound CUDA kernels of Chapters 6 and 7, at full size, and verify each.

    python scripts/tune_memory_kernels.py                      # every kernel family; a table each
    python scripts/tune_memory_kernels.py --only ch7/stencil   # families whose id starts with this
    python scripts/tune_memory_kernels.py --json sweep.json    # also write every row as JSON

Each kernel's launcher takes its configuration (vectors or rows per thread, block size, grid waves,
pipeline stages); the examples call it with the defaults written in its .cu file. This script times
the alternatives on this GPU so that the defaults can be chosen from one run: GB/s (read + write
counted), the fraction of the copy bandwidth that benchmark_peak.py measured (peaks/<gpu>.json) and of
PyTorch's own copy of 1 GiB timed in this run, and the default marked with `*`. Every configuration's
output is checked against the example's baseline first; one that does not match is reported, not timed.
Needs a CUDA GPU; exit 2 without one.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from harness.device import gpu_name, gpu_slug  # noqa: E402
from harness.verify import compare  # noqa: E402


@dataclass
class Family:
    """One kernel, its configurations, and the example whose inputs, bytes and baseline it uses."""

    id: str
    module: str                                   # the example, for setup, bytes_moved and the baseline
    configs: list[tuple[str, Callable]]           # (label, fn(inputs)); the default's label ends with " *"
    extra: dict = field(default_factory=dict)


def families() -> list[Family]:
    from ch6.kernels import ext as ch6
    from ch7.kernels import ext as ch7

    fams = []
    silu = [("default *", lambda x: ch6().silu_float4(x["x"]))]
    for block in (0, 256, 512, 1024):
        for vecs in (1, 2, 4, 8):
            for waves in (0, 1, 4):
                silu.append((f"block={block or 'API'} vecs={vecs} waves={waves}",
                             lambda x, b=block, v=vecs, w=waves: ch6().silu_float4(x["x"], b, v, w)))
    silu.append(("scalar fixed 256 (baseline)", lambda x: ch6().silu_fixed_block(x["x"])))
    silu.append(("scalar occupancy API", lambda x: ch6().silu_occupancy_api(x["x"])))
    fams.append(Family("ch6/silu_float4", "ch6.occupancy_block_size", silu))

    affine = [("default *",
               lambda x: ch6().affine_2d_float4(x["x"], x["row_scale"], x["col_bias"]))]
    for rows in (1, 2, 4, 8):
        for block_y in (4, 8, 16):
            affine.append((f"rows_per_thread={rows} block=32x{block_y}",
                           lambda x, r=rows, b=block_y: ch6().affine_2d_float4(x["x"], x["row_scale"], x["col_bias"], r, b)))
    affine.append(("scalar 2D (baseline)", lambda x: ch6().affine_2d(x["x"], x["row_scale"], x["col_bias"])))
    affine.append(("scalar 1D grid-stride", lambda x: ch6().affine_1d_grid_stride(x["x"], x["row_scale"], x["col_bias"])))
    fams.append(Family("ch6/affine_2d_float4", "ch6.indexing_1d_2d", affine))

    fams.append(Family("ch6/saxpy", "ch6.saxpy_vectorized", [
        ("float4 grid-stride *", lambda x: ch6().saxpy_float4(x["a"], x["x"], x["y"])),
        ("scalar grid-stride (baseline)", lambda x: ch6().saxpy_scalar(x["a"], x["x"], x["y"])),
        ("torch.add(alpha=)", lambda x: torch.add(x["y"], x["x"], alpha=x["a"])),
    ]))

    scale = [("default *", lambda x: ch7().scale_coalesced_ilp(x["x"], x["alpha"]))]
    for elems in (1, 2, 4, 8):
        for block in (128, 256, 512):
            for waves in (0, 1, 4):
                scale.append((f"elems={elems} block={block} waves={waves}",
                              lambda x, e=elems, b=block, w=waves: ch7().scale_coalesced_ilp(x["x"], x["alpha"], e, b, w)))
    scale.append(("coalesced, one per thread", lambda x: ch7().scale_coalesced(x["x"], x["alpha"])))
    scale.append(("torch x * alpha", lambda x: x["x"] * x["alpha"]))
    fams.append(Family("ch7/scale_coalesced_ilp", "ch7.coalesced_vs_strided", scale))

    transpose = [("tiled_padded default *", lambda x: ch7().transpose_tiled_padded(x["x"])),
                 ("tiled_float4 default *", lambda x: ch7().transpose_tiled_float4(x["x"]))]
    for rpp in (16, 8, 4, 2):
        transpose.append((f"tiled_padded rows_per_pass={rpp}",
                          lambda x, r=rpp: ch7().transpose_tiled_padded(x["x"], r)))
    for rpp in (32, 16, 8, 4):
        transpose.append((f"tiled_float4 rows_per_pass={rpp}",
                          lambda x, r=rpp: ch7().transpose_tiled_float4(x["x"], r)))
    transpose.append(("tiled (bank conflicts) default", lambda x: ch7().transpose_tiled(x["x"])))
    transpose.append(("naive (baseline)", lambda x: ch7().transpose_naive(x["x"])))
    transpose.append(("torch t().contiguous()", lambda x: x["x"].t().contiguous()))
    fams.append(Family("ch7/transpose", "ch7.transpose", transpose))

    stencil = [("cp_async default *", lambda x: ch7().stencil_cp_async(x["x"], x["taps"]))]
    stencil += [(f"cp_async stages={s}", lambda x, s=s: ch7().stencil_cp_async(x["x"], x["taps"], s)) for s in (2, 3, 4)]
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() >= (9, 0):
        stencil.append(("bulk_copy default *", lambda x: ch7().stencil_bulk_copy(x["x"], x["taps"])))
        stencil += [(f"bulk_copy stages={s}", lambda x, s=s: ch7().stencil_bulk_copy(x["x"], x["taps"], s))
                    for s in (2, 3, 4)]
    stencil.append(("plain loads (baseline)", lambda x: ch7().stencil_plain(x["x"], x["taps"])))
    fams.append(Family("ch7/stencil", "ch7.cp_async_prefetch", stencil))

    fams.append(Family("ch7/copy", "ch7.copy_bandwidth", [
        ("vec16 *", lambda x: ch7().copy_vec16(x["x"])),
        ("vec16_x4 *", lambda x: ch7().copy_vec16_x4(x["x"])),
        ("scalar (baseline)", lambda x: ch7().copy_scalar(x["x"])),
        ("torch clone", lambda x: x["x"].clone()),
    ]))
    fams.append(Family("ch7/bf16_vec16", "ch7.vectorized_loads", [
        ("vector_16B *", lambda x: ch7().scale_bf16_vec16(x["x"], x["alpha"])),
        ("scalar_2B (baseline)", lambda x: ch7().scale_bf16_scalar(x["x"], x["alpha"])),
    ]))
    return fams


def time_ms(fn: Callable[[], object], reps: int, rounds: int) -> float:
    """Median over `rounds` of the mean time of `reps` back-to-back calls, by CUDA events."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(rounds):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        per_call.append(start.elapsed_time(stop) / reps)
    return statistics.median(per_call)


def copy_peak_gbps() -> float | None:
    path = REPO_ROOT / "peaks" / f"{gpu_slug(gpu_name(torch.device('cuda')))}.json"
    try:
        return float(json.loads(path.read_text())["figures"]["memory_copy_gbps"]["value"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def torch_copy_gbps(reps: int, rounds: int) -> float:
    src = torch.empty(1 << 28, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), reps=max(reps // 5, 5), rounds=rounds)
    return 2 * src.numel() * 4 / (ms / 1e3) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="family id prefix, e.g. ch7/stencil (repeatable)")
    parser.add_argument("--size", choices=("tiny", "small", "full"), default="full")
    parser.add_argument("--reps", type=int, default=50, help="calls per timing round (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds, the median is kept (default 5)")
    parser.add_argument("--json", type=Path, help="also write every row here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.reps < 1 or args.rounds < 1:
        parser.exit(2, "tune_memory_kernels: --reps and --rounds must be positive\n")
    if not torch.cuda.is_available():
        parser.exit(2, "tune_memory_kernels: needs a CUDA GPU, and torch sees none\n")

    import importlib

    peak = copy_peak_gbps()
    torch_copy = torch_copy_gbps(args.reps, args.rounds)
    print(f"{gpu_name(torch.device('cuda'))}: copy bandwidth {peak and round(peak)} GB/s (peaks file), "
          f"torch copy_ of 1 GiB now {torch_copy:.0f} GB/s; size {args.size}")
    rows, failures = [], 0
    for fam in families():
        if args.only and not any(fam.id.startswith(p) for p in args.only):
            continue
        mod = importlib.import_module(fam.module)
        ex = mod.EXAMPLE
        inputs = ex.setup(args.size, torch.device("cuda"), args.seed)
        nbytes = ex.bytes_moved(inputs)
        with torch.no_grad():
            expected = [ex.baseline.fn(inputs)]
        print(f"\n{fam.id} ({fam.module}, {nbytes / 2**20:.0f} MiB moved)")
        print(f"  {'configuration':48s} {'ms':>9s} {'GB/s':>7s} {'of peak':>8s} {'of torch copy':>14s}")
        for label, fn in fam.configs:
            row = {"family": fam.id, "config": label, "default": label.endswith("*")}
            try:
                with torch.no_grad():
                    check = compare([fn(inputs)], expected)
                if not check.ok:
                    raise AssertionError(check.reason)
                with torch.no_grad():
                    ms = time_ms(lambda fn=fn, x=inputs: fn(x), args.reps, args.rounds)
            except Exception as exc:  # one bad configuration is reported; the sweep goes on
                failures += 1
                row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                print(f"  {label:48s} FAILED {row['error']}")
                rows.append(row)
                continue
            gbps = nbytes / (ms / 1e3) / 1e9
            row.update(ms=ms, gbps=gbps, fraction_of_peak=gbps / peak if peak else None,
                       fraction_of_torch_copy=gbps / torch_copy)
            frac = f"{gbps / peak:8.1%}" if peak else f"{'-':>8s}"
            print(f"  {label:48s} {ms:9.4f} {gbps:7.0f} {frac} {gbps / torch_copy:14.1%}")
            rows.append(row)
        best = max((r for r in rows if r["family"] == fam.id and "gbps" in r), key=lambda r: r["gbps"], default=None)
        if best:
            print(f"  best: {best['config']} ({best['gbps']:.0f} GB/s)")
        del inputs, expected
        torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps({"gpu": gpu_name(torch.device("cuda")), "copy_peak_gbps": peak,
                                         "torch_copy_gbps_now": torch_copy, "size": args.size, "rows": rows}, indent=1))
    print(f"\n{len(rows)} configurations, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
