"""KernelBench's fast_p over a problem set: the share of problems with a kernel that is correct and faster than p.

    python -m ch20.evaluate --problems DIR --candidates DIR [--device ...] [--json OUT]

    fast_p = (1 / N) * #{problems whose candidate is correct and has speedup > p}

over all N problems in --problems: a problem without a candidate, or whose candidate fails to compile,
crashes or is wrong, stays in the denominator. fast_0 is the plain correctness rate. A problem's
candidate is DIR/<problem>.py, or DIR/<problem>*/best_kernel.py as ch20.ai_kernel_generator saves it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ch20.problem import ProblemError
from ch20.verify import UsageError, verify

P_VALUES = (0.0, 1.0, 1.5, 2.0)


def find_candidate(candidates: Path, problem: str) -> Path | None:
    direct = candidates / f"{problem}.py"
    if direct.is_file():
        return direct
    nested = sorted(candidates.glob(f"{problem}*/best_kernel.py"))
    return nested[0] if nested else None


def fast_p(rows: list[dict], p_values=P_VALUES) -> dict[str, float]:
    n = len(rows)
    return {f"fast_{p:g}": (sum(1 for r in rows if r["correct"] and (r["speedup"] or 0) > p) / n if n else 0.0)
            for p in p_values}


def evaluate(problems: Path, candidates: Path, *, device: str = "auto", trials: int = 5, timeout: float = 300.0,
             log=print) -> dict:
    files = sorted(f for f in problems.glob("*.py") if not f.name.startswith("_"))
    if not files:
        raise UsageError(f"no problem files in {problems}")
    rows = []
    for f in files:
        cand = find_candidate(candidates, f.stem)
        row = {"problem": f.stem, "candidate": str(cand) if cand else None, "compiled": False, "correct": False,
               "speedup": None, "reason": "no candidate"}
        if cand is not None:
            try:
                v = verify(f, cand, device=device, trials=trials, timeout=timeout, min_speedup=0.0)
                row.update(compiled=v["compiled"], correct=v["correct"], speedup=v["speedup"], reason=v["reason"],
                           baseline_ms=v["baseline_ms"], candidate_ms=v["candidate_ms"], suspect=v["suspect"])
            except ProblemError as exc:
                row["reason"] = f"problem error: {str(exc).splitlines()[0]}"
        log(f"  {f.stem:<22} " + (f"{row['speedup']:.3g}x" if row["correct"] else f"FAIL: {row['reason'][:90]}"))
        rows.append(row)
    return {"problems": len(rows), "scores": fast_p(rows), "rows": rows}


def table(result: dict) -> str:
    lines = [f"{'problem':<22} {'correct':>7} {'speedup':>8}  reason"]
    for r in result["rows"]:
        sp = f"{r['speedup']:.3g}x" if r["speedup"] else "-"
        lines.append(f"{r['problem']:<22} {'yes' if r['correct'] else 'no':>7} {sp:>8}  "
                     f"{'' if r['correct'] else r['reason'][:70]}")
    lines.append("")
    lines.append("  ".join(f"{k} = {v:.3f}" for k, v in result["scores"].items()) + f"   (N = {result['problems']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"ch20.evaluate: {message}", file=sys.stderr)
            sys.exit(2)

    p = Parser(prog="python -m ch20.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--problems", type=Path, required=True)
    p.add_argument("--candidates", type=Path, required=True)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not args.problems.is_dir() or not args.candidates.is_dir():
        p.error("--problems and --candidates must be directories")
    try:
        result = evaluate(args.problems, args.candidates, device=args.device, trials=args.trials, timeout=args.timeout)
    except UsageError as exc:
        print(f"ch20.evaluate: {exc}", file=sys.stderr)
        return 2
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
