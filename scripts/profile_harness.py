#!/usr/bin/env python3
"""Profile the book's examples: each variant in its own process, under torch.profiler, Nsight Compute and Nsight Systems.

    python scripts/profile_harness.py ch1 --profile all --size small
    python scripts/profile_harness.py ch1/batched_matmul --profile ncu --ncu-set full
    python scripts/profile_harness.py ch1 --profile torch --dry-run     # print the commands, run nothing

Output: DIR/<chN>/<example>/<variant>/<profiler>/ holds command.json, stdout.log, stderr.log,
status.json and the profiler's artifacts; DIR/summary.json and DIR/summary.md gather the extracted
metrics, baseline beside optimized. A profiler that cannot run here is recorded as unavailable.
Exit code: 0 when everything that could run did, 1 when an available profiler or an example failed,
2 on bad usage.
"""
from __future__ import annotations

import argparse
import datetime
import secrets
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: `harness` is beside scripts/

from harness.example import SIZES, load_example  # noqa: E402
from harness.profiling import PROFILERS, Job, Profiling, Settings, add_to_summary, check_tools, commands, write_summary  # noqa: E402
from harness.sweep import UsageError, resolve  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, as in `python -m harness`
        print(f"profile_harness: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="scripts/profile_harness.py", description=__doc__.splitlines()[0])
    p.add_argument("targets", nargs="*", help="chN, chN/example or an example file (default: all)")
    p.add_argument("--profile", default="all", help="torch, ncu, nsys, all, or a comma list (default: all)")
    p.add_argument("--variant", default="all", help="baseline, optimized, all, or one variant's name")
    p.add_argument("--output-root", type=Path, help="default: profiles/<timestamp>")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--size", choices=SIZES, help="default: full on a GPU, tiny on the CPU")
    p.add_argument("--seed", type=int, help="input seed (default: fresh, recorded; the same for every variant)")
    p.add_argument("--iters", type=int, default=3, help="calls in the nsys range / active torch.profiler steps")
    p.add_argument("--warmup", type=int, default=3, help="calls before anything is profiled")
    p.add_argument("--timeout", type=float, default=600, help="seconds per process (default 600)")
    p.add_argument("--ncu-set", help="ncu section set on top of the default metrics, e.g. full")
    p.add_argument("--ncu-metrics", help="comma list replacing the default ncu metrics")
    p.add_argument("--launch-count", type=int, default=40, help="kernels ncu profiles per variant, at most")
    p.add_argument("--clock-control", choices=["none", "base"], default="none",
                   help="ncu's clock control; none (default) leaves the GPU's clocks as they are")
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


def plan(refs, args, profilers: list[str], device_type: str) -> tuple[list[Job], list[dict]]:
    """Jobs for every selected variant and profiler; examples that cannot run become notes."""
    import torch
    jobs, notes, loaded, matched = [], [], 0, False
    for ref in refs:
        try:
            ex = load_example(ref.path)
        except Exception as exc:
            notes.append({"id": ref.id, "title": ref.title, "status": "failed", "variants": [],
                          "reason": f"could not load: {type(exc).__name__}: {exc}".splitlines()[0][:300]})
            continue
        loaded += 1
        try:
            unmet = ex.requires.unmet(torch.device(device_type))
        except Exception:  # a dry run asking for CUDA on a machine without one cannot check
            unmet = None
        variants = [(v.name, v.role) for v in ex.variants() if args.variant in ("all", v.role, v.name)]
        matched = matched or bool(variants)
        if unmet:
            notes.append({"id": ref.id, "title": ex.title, "status": "skipped", "reason": unmet, "variants": []})
            continue
        jobs += [Job(ref.id, ref.path, name, role, prof, ex.title) for name, role in variants for prof in profilers]
    if loaded and not matched:
        raise UsageError(f"no variant {args.variant!r} in the examples asked for")
    return jobs, notes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        profilers = parse_profilers(args.profile)
        refs = resolve(args.targets)
        if not refs:
            raise UsageError("no examples found")
        device_type = resolve_device(args.device, args.dry_run)
    except UsageError as exc:
        print(f"profile_harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from harness.device import REPO_ROOT, provenance  # after parsing: these import torch

    size = args.size or ("full" if device_type == "cuda" else "tiny")
    out_root = (args.output_root or REPO_ROOT / "profiles" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    tools = check_tools(profilers, device_type, {"ncu": args.ncu, "nsys": args.nsys}, probe=not args.dry_run)
    settings = Settings(out_root=out_root, size=size, device=device_type, seed=secrets.randbelow(2**31)
                        if args.seed is None else args.seed, tools=tools, iters=args.iters, warmup=args.warmup,
                        timeout=args.timeout, ncu_set=args.ncu_set, launch_count=args.launch_count,
                        clock_control=args.clock_control)
    if args.ncu_metrics:
        settings.ncu_metrics = tuple(m.strip() for m in args.ncu_metrics.split(",") if m.strip())
    try:
        jobs, notes = plan(refs, args, profilers, device_type)
    except UsageError as exc:
        print(f"profile_harness: {exc}", file=sys.stderr)
        return EXIT_USAGE

    if args.dry_run:
        for note in notes:
            print(f"# {note['id']}: {note['status']}: {note['reason']}", file=sys.stderr)
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
        print(f"profile_harness: cannot write to {out_root}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    import torch
    run = {**provenance(torch.device(device_type), size=size), "seed": settings.seed, "profilers": profilers,
           "tools": {n: t.describe() for n, t in tools.items()}, "clock_control": settings.clock_control,
           "launch_count": settings.launch_count, "ncu_set": settings.ncu_set, "iters": settings.iters,
           "warmup": settings.warmup}
    summary = {"run": run, "examples": list(notes)}
    print(f"profile_harness: {len(jobs)} job(s) on {device_type}, size {size}, output in {out_root}")
    for name, tool in tools.items():
        print(f"  {name}: {tool.describe()}")
    for note in notes:
        print(f"  {note['id']}: {note['status']}: {note['reason']}")
    write_summary(out_root, summary)
    session = Profiling(settings)
    failed = sum(note["status"] == "failed" for note in notes)
    for i, job in enumerate(jobs, 1):
        result = session.run(job)
        add_to_summary(summary, job, result)
        write_summary(out_root, summary)
        failed += result["status"] == "failed"
        tail = f": {result['reason']}" if result.get("reason") else ""
        print(f"[{i}/{len(jobs)}] {job.example_id} {job.variant} {job.profiler}: {result['status']}{tail}")
    print(f"profile_harness: {failed} failed; summary: {out_root / 'summary.md'}")
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
