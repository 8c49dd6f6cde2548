"""The harness: one way to run, verify and time every example in this repository.

An example file defines ``EXAMPLE = Example(...)`` and ends with ``if __name__ == "__main__": main(EXAMPLE)``,
so that ``python chN/<example>.py`` runs it on its own; ``python -m harness run`` runs many, each in its own process.
"""
from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from harness.example import SIZES, Example, Requires, Variant

__all__ = ["Example", "Requires", "Variant", "main"]


def main(example: Example, argv: list[str] | None = None) -> None:
    """Run one example in this process and print its table (the harness's own checks, this process's threads)."""
    from harness import environment, peaks, report
    from harness.device import device_info, pick_device
    from harness.result import default_size
    from harness.runner import example_id, run_example
    from harness.timing import TimingConfig

    parser = argparse.ArgumentParser(description=example.title)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--size", choices=SIZES, help="default: full on a GPU, tiny on the CPU")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--cold-l2", action="store_true")
    parser.add_argument("--cpu-threads", type=int, default=1, help="intra-op threads for the CPU (default 1)")
    args = parser.parse_args(argv)
    try:
        device = pick_device(args.device)
    except RuntimeError as exc:
        parser.exit(2, f"{exc}\n")
    if args.cpu_threads < 1:
        parser.exit(2, "--cpu-threads must be at least 1\n")
    size = args.size or default_size(device.type)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    threads = environment.pin_threads(args.cpu_threads, affinity=device.type == "cpu")
    caller = sys.modules["__main__"].__file__ if hasattr(sys.modules["__main__"], "__file__") else ""
    result = run_example(example, device=device, size=size, seed=seed, timing=TimingConfig(cold_l2=args.cold_l2),
                         example_id=example_id(Path(caller)) if caller else "")
    result.environment["cpu"] = threads
    if result.variants:
        peaks.annotate(result, device_info(device))
        result.settle()
    print(f"{example.title}  [{device.type}, size {size}, seed {seed}]")
    if result.variants:
        print(report.text_table(report.HEADER[1:], [row[1:] for row in report.variant_rows(result)]))
    for note in report.example_notes(result):
        print(note.split(": ", 1)[-1] if note.startswith(": ") else note)
    if result.status == "failed":
        raise SystemExit(1)
