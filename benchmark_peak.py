"""Measure this machine's ceilings and hold each beside the datasheet figures of seven GPUs.

    python benchmark_peak.py              # GPU: ~2-3 minutes, writes peaks/<gpu-slug>.json
    python benchmark_peak.py --quick      # well under a minute, writes results/peaks/<slug>-quick.json
    python benchmark_peak.py --markdown peaks/h200.json   # the README's table, from a recorded run
    python benchmark_peak.py --p2p-only   # 2+ GPUs: peer bandwidth and latency only, results/peaks/<slug>-p2p.json
    python benchmark_peak.py --p2p-only --merge peaks/h200.json   # ... and put them into a recorded peaks file

On a GPU: device-memory read, write and copy bandwidth (every byte read and written counted), L2 bandwidth,
dense matmul TFLOP/s per dtype over a shape search (best shape and 8192^3), launch latency eager and from
a CUDA graph, host <-> device bandwidth, torch.compile on a small transformer block, and for every ordered
pair of GPUs the peer bandwidth (copy engine, SM copy kernel pulling and pushing, both directions at once)
and a small copy's round trip; with one GPU the peer figures say "needs 2 GPUs", not measured.
On the CPU: memory bandwidth and FP32 GEMM, written to results/peaks/cpu.json unless --out says otherwise:
`peaks/` holds GPU files from full runs only, because the harness reads its ceilings from there.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from harness import report
from harness.device import REPO_ROOT, gpu_name, gpu_slug, pick_device
from harness.peak_measure import SECTIONS, make_plan, merge_p2p, peers, run
from harness.peaks import PEAKS_DIR, comparison_rows, load_peaks, markdown_table
from harness.process import write_atomic


def default_out(device: torch.device, quick: bool, p2p_only: bool = False) -> Path:
    slug = gpu_slug(gpu_name(device))
    if p2p_only:
        return REPO_ROOT / "results" / "peaks" / f"{slug}{'-quick' if quick else ''}-p2p.json"
    if device.type == "cuda" and not quick:
        return PEAKS_DIR / f"{slug}.json"
    return REPO_ROOT / "results" / "peaks" / f"{slug}{'-quick' if quick else ''}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the machine's ceilings (see the module docstring).")
    parser.add_argument("--quick", action="store_true", help="small sizes, short timing, no torch.compile")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--out", type=Path, help="peaks JSON to write (default: see above)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    parser.add_argument("--markdown", type=Path, metavar="PEAKS_JSON",
                        help="print the Markdown peak table of a recorded peaks file, and exit")
    parser.add_argument("--all-gpus", action="store_true", help="with --markdown: a column per datasheet GPU")
    parser.add_argument("--p2p-only", action="store_true", help="measure only the GPU-to-GPU figures (needs 2+ GPUs)")
    parser.add_argument("--merge", type=Path, metavar="PEAKS_JSON",
                        help="with --p2p-only: replace the P2P figures of this peaks file, keeping the rest")
    args = parser.parse_args(argv)
    if args.merge and not args.p2p_only:
        print("benchmark_peak: --merge needs --p2p-only", file=sys.stderr)
        return 2
    merge_base = None
    if args.merge:
        try:
            merge_base = load_peaks(args.merge)
        except (OSError, ValueError) as exc:
            print(f"benchmark_peak: cannot read {args.merge}: {exc}", file=sys.stderr)
            return 2

    if args.markdown:
        try:
            print(markdown_table(load_peaks(args.markdown), all_gpus=args.all_gpus), end="")
        except (OSError, ValueError) as exc:
            print(f"benchmark_peak: cannot read {args.markdown}: {exc}", file=sys.stderr)
            return 2
        return 0

    try:
        device = pick_device(args.device)
    except RuntimeError as exc:
        print(f"benchmark_peak: {exc}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    if args.p2p_only and device.type != "cuda":
        print("benchmark_peak: --p2p-only needs CUDA GPUs", file=sys.stderr)
        return 2
    out = args.out or default_out(device, args.quick, args.p2p_only)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"benchmark_peak: cannot write {out}: {exc}", file=sys.stderr)
        return 2

    print(f"benchmark_peak: {gpu_name(device)}, {'quick' if args.quick else 'full'} run, writing {out}")
    save = lambda doc: write_atomic(out, json.dumps(doc, indent=1) + "\n")  # after every section: a crash keeps the rest
    sections = (peers,) if args.p2p_only else SECTIONS
    doc = run(device, make_plan(device, args.quick, not args.no_compile), save=save, sections=sections)
    if merge_base is not None:
        write_atomic(args.merge, json.dumps(merge_p2p(merge_base, doc), indent=1) + "\n")
        print(f"benchmark_peak: P2P figures merged into {args.merge}")

    if device.type == "cuda":
        header, rows = comparison_rows(doc)
        print("\nmeasured, and each datasheet figure with the measured value as a percentage of it:")
    else:  # a CPU held against GPU datasheets says nothing
        header, rows = comparison_rows(doc, keys=[], how=True)
        print()
    print(report.text_table(header, rows))
    for name, why in doc["skipped"].items():
        print(f"skipped {name}: {why}")
    for note in doc["notes"]:
        print(f"note: {note}")
    print(f"benchmark_peak: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
