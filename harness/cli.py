"""`python -m harness list|run`: the command line over sweep.py."""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

from harness.device import REPO_ROOT, pick_device
from harness.result import SIZES, ExampleResult, RunOptions, default_size
from harness.sweep import UsageError, resolve, run_sweep

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other usage error here
        print(f"harness: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


OWN_COMMANDS = {"ch20": "Chapter 20 has its own commands: python -m ch20.verify, python -m ch20.ai_kernel_generator, "
                        "python -m ch20.evaluate, python -m ch20.report (see ch20/README.md)"}


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
    run.add_argument("--timeout", type=_positive, default=600, help="seconds per example (default 600)")
    run.add_argument("--cpu-threads", type=_positive_int, default=1,
                     help="intra-op threads in each example's process (default 1; more: OMP_WAIT_POLICY=PASSIVE)")
    run.add_argument("--max-time", type=_positive, default=RunOptions.max_time_s,
                     help="seconds of measured time per variant before the stop rule gives up (default 2)")
    run.add_argument("--seed", type=int, help="fix the input seed (default: fresh each run, recorded)")
    run.add_argument("--cold-l2", action="store_true", help="flush the L2 before every timed call")
    run.add_argument("--record", action="store_true",
                     help="write chN/expectations/<gpu>.json (GPU only; clean runs only, unless --force)")
    run.add_argument("--force", action="store_true", help="with --record: record even a run that missed or regressed")
    run.add_argument("--strict", action="store_true", help="missed targets and regressions fail the run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    own = [OWN_COMMANDS[t.strip("/")] for t in args.targets if t.strip("/") in OWN_COMMANDS]
    if own:
        print(f"harness: {own[0]}", file=sys.stderr)
        return EXIT_USAGE
    try:
        refs = resolve(args.targets)
        if args.command == "list":
            for ref in refs:
                print(f"{ref.id:40s} {ref.title}")
            return EXIT_OK
        device = pick_device(args.device)
    except (UsageError, RuntimeError, ValueError) as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not refs:
        print("harness: no examples found", file=sys.stderr)
        return EXIT_USAGE
    opts = RunOptions(device=device.type, size=args.size or default_size(device.type), seed=args.seed,
                      cold_l2=args.cold_l2, max_time_s=args.max_time, cpu_threads=args.cpu_threads)
    out = args.out or REPO_ROOT / "results" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.record and device.type != "cuda":
        print("harness: --record ignored: expectations are recorded for GPUs only", file=sys.stderr)
    if args.cold_l2 and device.type != "cuda":
        print("harness: --cold-l2 not applied on the CPU (recorded as not applied)", file=sys.stderr)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise OSError("not writable")
    except OSError as exc:
        print(f"harness: cannot write results to {out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"harness: {len(refs)} example(s) on {device.type}, size {opts.size}, {opts.cpu_threads} timing thread(s), "
          f"results in {out}")
    try:
        results = run_sweep(refs, opts=opts, out_dir=out, timeout=args.timeout, record=args.record, force=args.force)
    except UsageError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    examples = [ExampleResult.from_dict(e) for e in results["examples"]]
    bad = [e.id for e in examples if e.status in ("failed", "timeout")]
    missed = [e.id for e in examples if e.missed]
    regressed = [e.id for e in examples if e.regressions]
    counts = {s: sum(e.status == s for e in examples) for s in ("ok", "failed", "timeout", "skipped")}
    print(f"harness: {', '.join(f'{n} {s}' for s, n in counts.items())}; "
          f"{len(missed)} with missed targets; {len(regressed)} regressed; summary: {out / 'summary.md'}")
    if results.get("interrupted"):
        return EXIT_INTERRUPTED
    if bad or (args.strict and (missed or regressed)):
        return EXIT_FAILED
    return EXIT_OK
