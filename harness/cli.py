"""`python -m harness list|run`: the command line over sweep.py."""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

from harness.device import REPO_ROOT, pick_device
from harness.example import SIZES
from harness.sweep import UsageError, resolve, run_sweep

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other usage error here
        print(f"harness: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description="Run, verify and time the book's examples.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ls = sub.add_parser("list", help="list examples")
    ls.add_argument("targets", nargs="*", help="chN, chN/example or an example file")
    run = sub.add_parser("run", help="run examples, each in its own process")
    run.add_argument("targets", nargs="*", help="chN, chN/example or an example file (default: all)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    run.add_argument("--size", choices=SIZES, help="default: full on a GPU, tiny on the CPU")
    run.add_argument("--out", type=Path, help="default: results/<timestamp>")
    run.add_argument("--timeout", type=float, default=600, help="seconds per example (default 600)")
    run.add_argument("--seed", type=int, help="fix the input seed (default: fresh each run, recorded)")
    run.add_argument("--cold-l2", action="store_true", help="flush the L2 before every timed call")
    run.add_argument("--record", action="store_true", help="write chN/expectations/<gpu>.json (GPU only)")
    run.add_argument("--strict", action="store_true", help="missed targets and regressions fail the run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        refs = resolve(args.targets)
        if args.command == "list":
            for ref in refs:
                print(f"{ref.id:40s} {ref.title}")
            return EXIT_OK
        device = pick_device(args.device)
    except (UsageError, RuntimeError) as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not refs:
        print("harness: no examples found", file=sys.stderr)
        return EXIT_USAGE
    size = args.size or ("full" if device.type == "cuda" else "tiny")
    out = args.out or REPO_ROOT / "results" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.record and device.type != "cuda":
        print("harness: --record ignored: expectations are recorded for GPUs only", file=sys.stderr)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise OSError("not writable")
    except OSError as exc:
        print(f"harness: cannot write results to {out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"harness: {len(refs)} example(s) on {device.type}, size {size}, results in {out}")
    try:
        results = run_sweep(refs, device=device, size=size, out_dir=out, timeout=args.timeout, seed=args.seed,
                            cold_l2=args.cold_l2, record=args.record)
    except UsageError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    examples = results["examples"]
    bad = [e["id"] for e in examples if e["status"] in ("failed", "timeout")]
    missed = [e["id"] for e in examples if any(t["met"] is False for t in e.get("targets", []))]
    regressed = [e["id"] for e in examples if e.get("regressions")]
    counts = {s: sum(e["status"] == s for e in examples) for s in ("ok", "failed", "timeout", "skipped")}
    print(f"harness: {', '.join(f'{n} {s}' for s, n in counts.items())}; "
          f"{len(missed)} with missed targets; {len(regressed)} regressed; summary: {out / 'summary.md'}")
    if bad or (args.strict and (missed or regressed)):
        return EXIT_FAILED
    return EXIT_OK
