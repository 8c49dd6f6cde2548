"""Profile the book's examples: each variant in its own process, under torch.profiler, Nsight Compute and Nsight Systems.

    python -m profiling ch7 --profile all                  # size small on a GPU: a chapter in minutes
    python -m profiling ch1/batched_matmul --profile ncu --ncu-set full --size full
    python -m profiling ch1 --profile torch --dry-run      # print the commands, run nothing

Output: DIR/<chN>/<example>/<variant>/<profiler>/ holds command.json, stdout.log, stderr.log,
status.json and the profiler's artifacts; DIR/summary.json and DIR/summary.md gather the extracted
metrics, baseline beside optimized, and what the run cost in time and disk. A profiler that cannot
run here is recorded as unavailable; a variant whose requirements this machine does not meet is
listed as skipped, with why. Exit code: 0 when everything that could run did, 1 when an available
profiler or an example failed, 2 on bad usage, 130 when interrupted (the summary keeps what finished).
"""
from __future__ import annotations

import argparse
import datetime
import secrets
import shlex
import sys
import time
from pathlib import Path

from harness.example import SIZES, load_example
from harness.sweep import UsageError, resolve
from profiling import torch_trace
from profiling.runner import CPU_SIZE, PROFILE_SIZE, Job, Profiling, Settings, commands, disk_bytes, hta_installed
from profiling.summary import add_skipped_variant, add_to_summary, write_summary
from profiling.tools import PROFILERS, check_tools

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_ITERS = 50             # profiled calls per process: more only makes traces and reports larger


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, as in `python -m harness`
        print(f"profiling: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _bounded(low: int, high: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high if high is not None else ''}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m profiling", description=__doc__.splitlines()[0])
    p.add_argument("targets", nargs="*", help="chN, chN/example or an example file (default: all)")
    p.add_argument("--profile", default="all", help="torch, ncu, nsys, all, or a comma list (default: all)")
    p.add_argument("--variant", default="all", help="baseline, optimized, reference, all, or one variant's name")
    p.add_argument("--output-root", type=Path, help="default: profiles/<timestamp>")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--size", choices=SIZES, help=f"default: {PROFILE_SIZE} on a GPU, {CPU_SIZE} on the CPU")
    p.add_argument("--seed", type=int, help="input seed (default: fresh, recorded; the same for every variant)")
    p.add_argument("--iters", type=_bounded(1, MAX_ITERS), default=3,
                   help=f"calls in the nsys range / active torch.profiler steps (default 3, at most {MAX_ITERS})")
    p.add_argument("--warmup", type=_bounded(1, MAX_ITERS), default=2, help="calls before anything is profiled (default 2)")
    p.add_argument("--iter-budget", type=_positive_float, default=2.0,
                   help="seconds of profiled calls per process: fewer calls where one is slow (default 2)")
    p.add_argument("--timeout", type=_positive_float, default=300, help="seconds per process (default 300)")
    p.add_argument("--budget", type=_positive_float,
                   help="seconds for the whole run: jobs not started by then are listed as not run")
    p.add_argument("--ncu-set", help="ncu section set on top of the default metrics, e.g. full")
    p.add_argument("--ncu-metrics", help="comma list replacing the default ncu metrics")
    p.add_argument("--launch-count", type=_bounded(1), default=8, help="kernels ncu profiles per variant, at most (default 8)")
    p.add_argument("--launch-skip", type=_bounded(0), default=0,
                   help="kernels in the range ncu lets pass first (default 0); then --iters calls are in the range")
    p.add_argument("--clock-control", choices=["none", "base"], default="none",
                   help="ncu's clock control; none (default) leaves the GPU's clocks as they are")
    p.add_argument("--trace-max-events", type=_bounded(100), default=torch_trace.MAX_EVENTS,
                   help=f"torch trace events kept per variant, the profiled range first (default {torch_trace.MAX_EVENTS})")
    p.add_argument("--ncu", help="path to ncu (default: PATH, CUDA_HOME, usual folders)")
    p.add_argument("--nsys", help="path to nsys (default: PATH, CUDA_HOME, usual folders)")
    p.add_argument("--dry-run", action="store_true", help="print the commands that would run, one a line; run nothing")
    return p


def parse_profilers(text: str) -> list[str]:
    names = list(PROFILERS) if text == "all" else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in PROFILERS]
    if unknown or not names:
        raise UsageError(f"unknown profiler {', '.join(unknown) or repr(text)}: use torch, ncu, nsys or all")
    return list(dict.fromkeys(names))


def resolve_device(requested: str, dry_run: bool) -> str:
    import torch
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available() and not dry_run:
        raise UsageError("--device cuda was asked for, but torch sees no CUDA GPU")
    return requested


def _unmet(requires, device_type: str) -> str | None:
    import torch
    if device_type == "cuda" and not torch.cuda.is_available():
        return None  # a dry run for a GPU on a machine without one: nothing to check against
    return requires.unmet(torch.device(device_type))


def plan(refs, args, profilers: list[str], device_type: str) -> tuple[list[Job], list[dict], list[tuple]]:
    """(jobs for every selected variant and profiler, examples that cannot run, variants skipped with why)."""
    jobs, notes, skipped, loaded, matched = [], [], [], 0, False
    for ref in refs:
        try:
            ex = load_example(ref.path)
        except Exception as exc:
            notes.append({"id": ref.id, "title": ref.title, "status": "failed", "variants": [],
                          "reason": f"could not load: {type(exc).__name__}: {exc}".splitlines()[0][:300]})
            continue
        loaded += 1
        variants = [v for v in ex.variants() if args.variant in ("all", v.role, v.name)]
        matched = matched or bool(variants)
        if unmet := _unmet(ex.requires, device_type):
            notes.append({"id": ref.id, "title": ex.title, "status": "skipped", "reason": unmet, "variants": []})
            continue
        for v in variants:
            if unmet := _unmet(v.requires, device_type):
                skipped.append((ref.id, ex.title, v.name, v.role, unmet))
            else:
                jobs += [Job(ref.id, ref.path, v.name, v.role, prof, ex.title) for prof in profilers]
    if loaded and not matched:
        raise UsageError(f"no variant {args.variant!r} in the examples asked for")
    return jobs, notes, skipped


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before the first job: nothing to keep (after it, run() keeps the summary)
        print("profiling: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        profilers = parse_profilers(args.profile)
        refs = resolve(args.targets)
        if not refs:
            raise UsageError("no examples found")
        device_type = resolve_device(args.device, args.dry_run)
        size = args.size or (PROFILE_SIZE if device_type == "cuda" else CPU_SIZE)
        jobs, notes, skipped = plan(refs, args, profilers, device_type)
    except UsageError as exc:
        print(f"profiling: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from harness.device import REPO_ROOT  # after parsing: it imports torch

    out_root = (args.output_root or REPO_ROOT / "profiles" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    tools = check_tools(profilers, device_type, {"ncu": args.ncu, "nsys": args.nsys}, probe=not args.dry_run)
    settings = Settings(out_root=out_root, size=size, device=device_type, seed=secrets.randbelow(2**31)
                        if args.seed is None else args.seed, tools=tools, iters=args.iters, warmup=args.warmup,
                        iter_budget=args.iter_budget, timeout=args.timeout, ncu_set=args.ncu_set,
                        launch_count=args.launch_count, launch_skip=args.launch_skip, clock_control=args.clock_control,
                        trace_max_events=args.trace_max_events, hta=hta_installed())
    if args.ncu_metrics:
        settings.ncu_metrics = tuple(m.strip() for m in args.ncu_metrics.split(",") if m.strip())

    if args.dry_run:
        for note in notes:
            print(f"# {note['id']}: {note['status']}: {note['reason']}", file=sys.stderr)
        for ex_id, _, name, _, reason in skipped:
            print(f"# {ex_id} {name}: skipped: {reason}", file=sys.stderr)
        for name, tool in tools.items():
            if not tool.available:
                print(f"# {name}: unavailable: {tool.reason}", file=sys.stderr)
        for job in jobs:
            if tools[job.profiler].available:
                for cmd in commands(job, settings):
                    print(shlex.join(cmd))
        return EXIT_OK

    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"profiling: cannot write to {out_root}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(jobs, notes, skipped, settings, profilers, args.budget)


def run(jobs: list[Job], notes: list[dict], skipped: list[tuple], settings: Settings, profilers: list[str],
        budget: float | None) -> int:
    """Every job in turn, the summary rewritten after each; Ctrl-C keeps what finished and says so."""
    import torch

    from harness.device import provenance
    t0 = time.monotonic()
    out_root = settings.out_root
    run_info = {**provenance(torch.device(settings.device), size=settings.size), "seed": settings.seed,
                "profilers": profilers, "tools": {n: t.describe() for n, t in settings.tools.items()},
                "clock_control": settings.clock_control, "launch_count": settings.launch_count,
                "launch_skip": settings.launch_skip, "ncu_set": settings.ncu_set, "iters": settings.iters,
                "warmup": settings.warmup, "iter_budget": settings.iter_budget,
                "trace_max_events": settings.trace_max_events, "budget_s": budget}
    summary = {"run": run_info, "examples": list(notes)}
    for ex_id, title, name, role, reason in skipped:
        add_skipped_variant(summary, ex_id, title, name, role, reason)
    print(f"profiling: {len(jobs)} job(s) on {settings.device}, size {settings.size}, output in {out_root}")
    for name, tool in settings.tools.items():
        print(f"  {name}: {tool.describe()}")
    for note in notes:
        print(f"  {note['id']}: {note['status']}: {note['reason']}")
    for ex_id, _, name, _, reason in skipped:
        print(f"  {ex_id} {name}: skipped: {reason}")

    def finish() -> None:
        run_info.update(elapsed_s=round(time.monotonic() - t0, 1), disk_bytes=disk_bytes(out_root))
        write_summary(out_root, summary)

    write_summary(out_root, summary)
    session = Profiling(settings)
    failed = sum(note["status"] == "failed" for note in notes)
    try:
        for i, job in enumerate(jobs, 1):
            if budget is not None and time.monotonic() - t0 > budget:
                result = {"status": "skipped", "reason": f"not run: the run's budget of {budget:g} s was spent",
                          "metrics": {}}
                run_info["budget_skipped"] = run_info.get("budget_skipped", 0) + 1
            else:
                result = session.run(job)
            add_to_summary(summary, job, result)
            finish()
            failed += result["status"] == "failed"
            tail = f": {result['reason']}" if result.get("reason") else ""
            took = f" ({result['wall_s']:.1f} s)" if "wall_s" in result else ""
            print(f"[{i}/{len(jobs)} {time.monotonic() - t0:.0f}s] {job.example_id} {job.variant} {job.profiler}: "
                  f"{result['status']}{took}{tail}", flush=True)
    except KeyboardInterrupt:
        run_info["interrupted"] = True
        finish()
        print(f"profiling: interrupted; what finished is in {out_root / 'summary.md'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finish()
    print(f"profiling: {failed} failed, {time.monotonic() - t0:.0f} s, {disk_bytes(out_root) / 1e6:.3g} MB; "
          f"summary: {out_root / 'summary.md'}")
    return EXIT_FAILED if failed else EXIT_OK
