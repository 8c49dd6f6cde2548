"""KernelBench's fast_p over a problem set: the share of problems with a kernel that is correct and faster than p.

    python -m ch20.evaluate --problems DIR --candidates DIR [--device ...] [--json OUT]
    python -m ch20.evaluate --problems DIR --search OUT_DIR [--budget N] [--size S] [--only a,b] [--json OUT]
    python -m ch20.evaluate --merge PART.json ... [--json OUT] [--markdown TABLE.md]

    fast_p = (1 / N) * #{problems whose candidate is correct and has speedup > p}

over all N problems in --problems: a problem without a candidate, or whose candidate fails to compile,
crashes or is wrong, stays in the denominator. fast_0 is the plain correctness rate. A problem's
candidate is DIR/<problem>.py, or DIR/<problem>*/best_kernel.py as ch20.ai_kernel_generator saves it.

--search runs the search generator on every problem itself (ch20/search_eval.py: --budget verified
candidates each, against one live PyTorch-eager reference), then verifies each problem's fastest correct
kernel once more against torch.compile of the same reference: fast_p against both baselines, the
second the stronger and the honest headline. --merge joins the JSON of runs over parts of the set.
"""
from __future__ import annotations

import argparse
import json
import math
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


def geomean(values) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def scores(rows: list[dict]) -> dict:
    """fast_p and the geometric-mean speedup of the correct kernels, against each baseline the rows carry."""
    out = {"eager": {**fast_p(rows), "geomean_speedup_correct": geomean(r["speedup"] for r in rows if r["correct"])}}
    if any("vs_compile" in r for r in rows):
        compiled = [{"correct": (r.get("vs_compile") or {}).get("correct", False),
                     "speedup": (r.get("vs_compile") or {}).get("speedup")} for r in rows]
        out["torch_compile"] = {**fast_p(compiled),
                                "geomean_speedup_correct": geomean(r["speedup"] for r in compiled if r["correct"])}
    return out


def merge(parts: list[dict]) -> dict:
    """One result from runs over parts of the problem set (a problem run twice keeps its last row)."""
    rows = {}
    for part in parts:
        for r in part["rows"]:
            rows[r["problem"]] = r
    merged = sorted(rows.values(), key=lambda r: r["problem"])
    return {"problems": len(merged), "scores": fast_p(merged), "by_baseline": scores(merged), "rows": merged,
            "parts": [{k: v for k, v in part.items() if k not in ("rows", "scores", "by_baseline")} for part in parts]}


def markdown(result: dict) -> str:
    """The README's table: one row per problem, both baselines, then fast_p and the geomean for each."""
    lines = ["| problem | family | candidates | correct | best kernel | eager ms | kernel ms | vs eager | "
             "vs torch.compile |", "|---|---|---|---|---|---|---|---|---|"]

    def x(v):
        return f"{v:.3g}x" if v else "-"
    for r in result["rows"]:
        c = r.get("vs_compile") or {}
        vs_compile = x(c.get("speedup")) if c.get("correct") else (f"fail: {c.get('reason', '')[:40]}" if c else "-")
        lines.append(f"| {r['problem']} | {r.get('family', '-')} | {r.get('candidates', '-')} | "
                     f"{r.get('correct_candidates', '-')} | {r.get('best_label') or '-'} | "
                     f"{r.get('baseline_ms') or 0:.4g} | {r.get('candidate_ms') or 0:.4g} | "
                     f"{x(r['speedup']) if r['correct'] else 'fail: ' + r['reason'][:40]} | {vs_compile} |")
    lines.append("")
    for name, s in result.get("by_baseline", scores(result["rows"])).items():
        g = s.get("geomean_speedup_correct")
        mean = f"; geometric-mean speedup of the correct kernels {g:.3g}x" if g else ""
        lines.append(f"- against {'PyTorch eager' if name == 'eager' else 'torch.compile'}: "
                     + ", ".join(f"{k} = {v:.2f}" for k, v in s.items() if k.startswith("fast_")) + mean)
    lines.append(f"- N = {result['problems']} problems")
    return "\n".join(lines) + "\n"


README_BEGIN, README_END = "<!-- fastp:begin -->", "<!-- fastp:end -->"


def readme_block(result: dict) -> str:
    """The table with where it came from: hardware, software, the search's budget, whether every part ran."""
    parts = result.get("parts") or [result]
    prov = [p.get("provenance") or {} for p in parts]
    devices = sorted({str((p.get("device") or {}).get("name")) for p in prov if p})
    shas = sorted({str(p.get("git_sha")) for p in prov if p})
    budgets = sorted({str((p.get("search") or {}).get("budget", "?")) for p in parts})
    sizes = sorted({str((p.get("search") or {}).get("size", "?")) for p in parts})
    complete = all(p.get("complete", True) for p in parts)
    return (f"Recorded on {', '.join(devices) or '?'} (git {', '.join(shas) or '?'}), {' or '.join(budgets)} "
            f"verified candidates per problem at size {', '.join(sizes)}"
            + ("" if complete else "; some parts stopped at their deadline: missing problems are not in N")
            + ".\n\n" + markdown(result))


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
    p.add_argument("--problems", type=Path)
    p.add_argument("--candidates", type=Path)
    p.add_argument("--search", type=Path, metavar="OUT_DIR", help="run the search on every problem, kernels here")
    p.add_argument("--merge", type=Path, nargs="+", metavar="PART_JSON")
    p.add_argument("--budget", type=int, default=4, help="--search: verified candidates per problem")
    p.add_argument("--batch", type=int, default=2, help="--search: candidates per search step")
    p.add_argument("--size", choices=["tiny", "small", "full"], help="default full on CUDA, tiny on the CPU")
    p.add_argument("--only", help="--search: comma-separated problem names (a part of the set)")
    p.add_argument("--no-compile", action="store_true", help="--search: skip the torch.compile baseline")
    p.add_argument("--rounds", type=int, default=8, help="--search: timed rounds per verification")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path, help="write the README table here")
    p.add_argument("--readme", type=Path, help="a README whose <!-- fastp:begin/end --> block gets the table")
    p.add_argument("--readme-out", type=Path, help="where that README is written (default: in place)")
    args = p.parse_args(argv)
    modes = sum(x is not None for x in (args.candidates, args.search, args.merge))
    if modes != 1:
        p.error("give exactly one of --candidates, --search, --merge")
    if args.merge is None and (args.problems is None or not args.problems.is_dir()):
        p.error("--problems must be a directory")
    if args.candidates is not None and not args.candidates.is_dir():
        p.error("--candidates must be a directory")
    if args.budget < 1 or args.batch < 1 or args.rounds < 2 or args.trials < 1:
        p.error("--budget, --batch and --trials must be at least 1, --rounds at least 2")
    try:
        if args.merge:
            missing = [str(f) for f in args.merge if not f.is_file()]
            if missing:
                p.error(f"no such file: {missing[0]}")
            result = merge([json.loads(f.read_text()) for f in args.merge])
        elif args.search:
            from ch20.search_eval import search_all
            only = [x for x in (args.only or "").split(",") if x]
            def progress(partial):   # a run stopped by its deadline keeps the problems it finished
                if args.json:
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(partial, indent=1, default=str) + "\n")
            result = search_all(args.problems, args.search, device=args.device, size=args.size, budget=args.budget,
                                batch=args.batch, rounds=args.rounds, trials=args.trials, timeout=args.timeout,
                                only=only, compile_baseline=not args.no_compile, seed=args.seed, progress=progress)
        else:
            result = evaluate(args.problems, args.candidates, device=args.device, trials=args.trials,
                              timeout=args.timeout)
    except UsageError as exc:
        print(f"ch20.evaluate: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(table(result))
    if "by_baseline" in result:
        print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(result))
    if args.readme:
        text = args.readme.read_text()
        if README_BEGIN not in text or README_END not in text:
            print(f"ch20.evaluate: {args.readme} has no {README_BEGIN} ... {README_END} block", file=sys.stderr)
            return 2
        head, rest = text.split(README_BEGIN, 1)
        (args.readme_out or args.readme).write_text(head + README_BEGIN + "\n" + readme_block(result) +
                                                    README_END + rest.split(README_END, 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
