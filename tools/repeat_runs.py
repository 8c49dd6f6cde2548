"""Run the same examples several times and tabulate each optimized variant's speedup per run: is it stable?

    python tools/repeat_runs.py ch1 --runs 10 --device cpu --out docs/cpu-ch1-repeat.md

Each run is a separate `python -m harness run --strict` (its own processes, its own fresh inputs); the table
shows every run's speedups with the timing threads and load average it was measured under, and the exit
code of each run, so a claim such as "every optimized variant beats its baseline on the CPU" is checked
across runs rather than read off one.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.device import REPO_ROOT, provenance
from harness.report import markdown_table
from harness.result import ExampleResult


def one_run(targets: list[str], device: str, extra: list[str]) -> tuple[int, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run([sys.executable, "-m", "harness", "run", *targets, "--device", device, "--strict",
                            "--out", tmp, *extra], cwd=REPO_ROOT, capture_output=True, text=True)
        path = Path(tmp) / "results.json"
        return p.returncode, json.loads(path.read_text()) if path.exists() else {"run": {}, "examples": []}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", help="chN or chN/example")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--out", type=Path, help="Markdown file to write (default: print)")
    args, extra = parser.parse_known_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    rows, slower = [], 0
    for i in range(args.runs):
        rc, data = one_run(args.targets, args.device, extra)
        run = data.get("run", {})
        for ex in map(ExampleResult.from_dict, data["examples"]):
            for v in ex.variants:
                if v.role != "optimized" or v.status == "skipped":
                    continue
                speedup = ex.speedup(v.name)
                slower += speedup is None or speedup <= 1.0
                rows.append([str(i + 1), ex.id, v.name, "-" if speedup is None else f"{speedup:.2f}x",
                             str(run.get("cpu_threads")), f"{run.get('load_average') or 0:.2f}", str(rc)])
        print(f"repeat_runs: run {i + 1}/{args.runs} exit {rc}", file=sys.stderr)
    prov = provenance(__import__("torch").device("cpu"))
    head = (f"{args.runs} runs of `python -m harness run {' '.join(args.targets)} --device {args.device} --strict`"
            f" on {prov['device'].get('cpu', prov['device']['name'])}, git {prov['git_sha']}, {prov['started_at']}, "
            f"torch {prov['versions']['torch']}. Optimized variants not faster than their baseline: {slower}.\n\n")
    text = head + markdown_table(["run", "example", "variant", "speedup", "threads", "load avg", "exit"], rows) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0 if slower == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
