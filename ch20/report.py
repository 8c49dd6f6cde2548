"""A Markdown table of recorded loop runs, read from their files (never typed in).

    python -m ch20.report [RUN_DIR ...]      default: every ch20/runs/*/ holding a summary.json

One row per run: the problem, generator, hardware, how many candidates were verified and how many were
correct, the best kernel, and the speedup over PyTorch eager that its final, from-scratch verification
measured (the one its certificate records).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.device import REPO_ROOT

HEADER = ["run", "problem", "generator", "device", "candidates", "correct", "best kernel", "reference ms",
          "kernel ms", "speedup", "certificate"]


def row(run: Path) -> list[str]:
    summary = json.loads((run / "summary.json").read_text())
    lines = [json.loads(x) for x in (run / "iterations.jsonl").read_text().splitlines()] \
        if (run / "iterations.jsonl").is_file() else []
    final = summary.get("final") or {}
    cert = run / "certificate.json"

    def ms(x):
        return f"{x:.4g}" if x else "-"

    return [run.name, Path(summary["problem"]).stem, summary["generator"], summary["hardware"].get("name", "?"),
            str(summary["candidates"]), str(sum(bool(e["verdict"]["correct"]) for e in lines)),
            (summary.get("best") or {}).get("label") or "-", ms(final.get("baseline_ms")), ms(final.get("candidate_ms")),
            f"{final['speedup']:.3g}x" if final.get("speedup") else "-", "yes" if cert.is_file() else "no"]


def table(runs: list[Path]) -> str:
    rows = [row(r) for r in runs]
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    runs = [Path(a) for a in args] or sorted(p.parent for p in (REPO_ROOT / "ch20/runs").glob("*/summary.json"))
    missing = [r for r in runs if not (r / "summary.json").is_file()]
    if missing:
        print(f"ch20.report: no summary.json in {missing[0]}", file=sys.stderr)
        return 2
    if not runs:
        print("ch20.report: no recorded runs under ch20/runs/", file=sys.stderr)
        return 1
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
