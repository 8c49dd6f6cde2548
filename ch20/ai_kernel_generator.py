"""The generate -> verify -> refine loop for one problem.

    python -m ch20.ai_kernel_generator --problem P.py --generator llm|search [--max-iters N]
        [--budget-min M] [--target-speedup X] [--device auto|cpu|cuda] [--out DIR]

Each iteration asks the generator for candidates, verifies each (ch20.verify, against one reference
run made at the start, so every candidate sees the same secret inputs and the same baseline time),
scores it with the staged reward and logs it to DIR/iterations.jsonl: the source, the verdict, the
timing, the feedback. The loop stops at --max-iters, when --budget-min minutes are spent, or when an
accepted kernel reaches --target-speedup. The best kernel is then verified again from scratch, with
fresh inputs and a fresh baseline, and saved as DIR/best_kernel.py with DIR/certificate.json when that
verification accepts it. DIR/summary.json holds the progress per iteration.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from ch20 import certificate
from ch20.generators import Attempt, Context, EndpointUnreachable, GeneratorError, make_generator
from ch20.problem import ProblemError, load_problem
from ch20.reward import group_advantages, reward_from_verdict
from ch20.verify import UsageError, run_reference, summary, verify
from harness.device import pick_device

EXIT_UNREACHABLE = 3   # the LLM endpoint never answered: not the same as "no kernel was accepted" (1)
LOGGED_VERDICT_KEYS = ("compiled", "correct", "accepted", "reason", "stage", "max_abs_err", "tolerance", "trials",
                       "baseline_ms", "candidate_ms", "speedup", "speedup_ci", "suspect", "warnings", "tampered",
                       "sandbox", "provenance", "elapsed_s")


def _no_code_verdict(note: str) -> dict:
    """A reply without a code block scores like a file that does not compile, and says why."""
    return {"compiled": False, "correct": False, "accepted": False, "stage": "generate", "suspect": [],
            "reason": "the reply held no ```python code block", "speedup": None, "candidate_ms": None,
            "feedback": "Your reply held no ```python code block. Reply with exactly one, holding the whole file "
                        "that defines class ModelNew."}


def _best(history: list[Attempt]) -> Attempt | None:
    def speed(a):
        return a.verdict.get("speedup") or 0.0
    accepted = [a for a in history if a.verdict.get("accepted")]
    correct = [a for a in history if a.verdict.get("correct")]
    pool = accepted or correct
    return max(pool, key=speed) if pool else None


def run_loop(problem_path: Path, generator: str, *, max_iters: int = 5, budget_min: float = 15.0,
             target_speedup: float = 2.0, device: str = "auto", out: Path | None = None, trials: int = 5,
             timeout: float = 300.0, min_speedup: float = 1.0, batch: int = 4, seed: int = 0,
             generator_options: dict | None = None, log=print, rounds: int = 16) -> dict:
    started = time.monotonic()
    problem = load_problem(problem_path)
    try:
        dev = pick_device(device).type
    except (RuntimeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    size = "full" if dev == "cuda" else "tiny"
    out = Path(out or Path("ch20/runs") / f"{problem.name}-{generator}-{dev}")
    out.mkdir(parents=True, exist_ok=True)
    log(f"{problem.name} ({problem.family}), generator {generator}, {dev} at size {size}: output in {out}")

    ctx = Context(problem=problem, device=dev, size=size, dtype=str(problem.dtype(size)).replace("torch.", ""))
    gen = make_generator(generator, ctx, batch=batch, seed=seed, **(generator_options or {}))  # fails early
    reference = run_reference(problem, device=dev, size=size, trials=trials)
    try:
        return _loop(problem, generator, gen, reference, ctx, started, max_iters=max_iters, budget_min=budget_min,
                     target_speedup=target_speedup, dev=dev, size=size, out=out, trials=trials, timeout=timeout,
                     min_speedup=min_speedup, log=log, rounds=rounds)
    finally:
        reference.close()


def _loop(problem, generator, gen, reference, ctx, started, *, max_iters, budget_min, target_speedup, dev, size, out,
          trials, timeout, min_speedup, log, rounds) -> dict:
    log(f"reference (PyTorch eager) on {reference.hardware.get('name')}: {reference.calls_per_batch} calls per timed batch")
    ctx.input_shapes = [list(x.shape) for x in problem.make_inputs(size, 0, "normal") if hasattr(x, "shape")] \
        if dev == "cpu" else []
    ctx.tolerance = reference.tolerance()

    history: list[Attempt] = []
    progress: list[dict] = []
    stop = f"reached --max-iters {max_iters}"
    unreachable = False
    log_path = out / "iterations.jsonl"
    log_path.write_text("")
    with tempfile.TemporaryDirectory(prefix="ch20-loop-") as tmp:
        for it in range(1, max_iters + 1):
            if time.monotonic() - started > budget_min * 60:
                stop = f"spent --budget-min {budget_min:g}"
                break
            try:
                proposals = gen.propose(history)
            except GeneratorError as exc:
                stop = f"generator error: {exc}"
                unreachable = isinstance(exc, EndpointUnreachable)
                log(f"iteration {it}: {stop}")
                break
            if not proposals:
                stop = "the generator has nothing left to propose"
                break
            batch_attempts = []
            for j, prop in enumerate(proposals):
                if time.monotonic() - started > budget_min * 60:
                    stop = f"spent --budget-min {budget_min:g}"
                    break
                if prop.source:
                    path = Path(tmp) / f"iter{it:02d}_{j}.py"
                    path.write_text(prop.source)
                    verdict = verify(problem, path, reference=reference, timeout=timeout, min_speedup=min_speedup,
                                     rounds=rounds)
                else:
                    verdict = _no_code_verdict(prop.note)
                attempt = Attempt(it, prop, verdict, reward_from_verdict(verdict))
                batch_attempts.append(attempt)
                history.append(attempt)
            advantages = group_advantages([a.reward for a in batch_attempts])
            with log_path.open("a") as f:
                for j, (a, adv) in enumerate(zip(batch_attempts, advantages, strict=True)):
                    f.write(json.dumps({"iteration": it, "index": j, "generator": generator, "label": a.proposal.label,
                                        "params": a.proposal.params, "reward": a.reward, "advantage": adv,
                                        "verdict": {k: a.verdict.get(k) for k in LOGGED_VERDICT_KEYS},
                                        "feedback": a.verdict.get("feedback"), "source": a.proposal.source,
                                        "note": a.proposal.note or None}, default=str) + "\n")
            best = _best(history)
            row = {"iteration": it, "candidates": len(batch_attempts),
                   "correct": sum(bool(a.verdict.get("correct")) for a in batch_attempts),
                   "accepted": sum(bool(a.verdict.get("accepted")) for a in batch_attempts),
                   "best_this_iteration": max((a.verdict.get("speedup") or 0.0 for a in batch_attempts
                                               if a.verdict.get("correct")), default=None),
                   "best_so_far": best.verdict.get("speedup") if best else None,
                   "best_label": best.proposal.label if best else None,
                   "elapsed_s": round(time.monotonic() - started, 1)}
            progress.append(row)
            for a in batch_attempts:
                v = a.verdict
                log(f"  [{it}] {a.proposal.label:<28} reward {a.reward:.2f}  "
                    + (f"{v['speedup']:.3g}x" if v.get("speedup") else v.get("reason", "")[:110]))
            log(f"iteration {it}: {row['correct']}/{row['candidates']} correct, best so far "
                + (f"{row['best_so_far']:.3g}x ({row['best_label']})" if row["best_so_far"] else "none")
                + f", {row['elapsed_s']:.0f} s")
            if best and best.verdict.get("accepted") and (best.verdict.get("speedup") or 0) >= target_speedup:
                stop = f"reached --target-speedup {target_speedup:g}"
                break

    result = {"problem": str(problem.path), "generator": generator, "device": dev, "size": size,
              "hardware": reference.hardware, "versions": reference.versions,
              "calls_per_batch": reference.calls_per_batch, "iterations": progress, "stop": stop,
              "endpoint_unreachable": unreachable,
              "candidates": len(history), "best": None, "final": None}
    best = _best(history)
    if best is not None:
        kernel = out / "best_kernel.py"
        kernel.write_text(best.proposal.source)
        log(f"best: {best.proposal.label}, {best.verdict.get('speedup', 0):.3g}x; verifying it again from scratch")
        final = verify(problem, kernel, device=dev, size=size, trials=trials, timeout=timeout,
                       min_speedup=min_speedup, rounds=rounds)
        log(summary(final))
        result["best"] = {"label": best.proposal.label, "params": best.proposal.params, "iteration": best.iteration,
                          "speedup_in_loop": best.verdict.get("speedup")}
        result["final"] = {k: final.get(k) for k in LOGGED_VERDICT_KEYS}
        if final["accepted"]:
            certificate.write(final, out / "certificate.json")
            result["certificate"] = "certificate.json"
            log(f"certificate: {out / 'certificate.json'}")
    else:
        log("no correct kernel: nothing to certify")
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    (out / "summary.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    log(f"stopped: {stop}; {len(history)} candidates in {result['elapsed_s']:.0f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"ch20.ai_kernel_generator: {message}", file=sys.stderr)
            sys.exit(2)

    p = Parser(prog="python -m ch20.ai_kernel_generator", description=__doc__.splitlines()[0])
    p.add_argument("--problem", type=Path, required=True)
    p.add_argument("--generator", choices=["llm", "search"], required=True)
    p.add_argument("--max-iters", type=int, default=5)
    p.add_argument("--budget-min", type=float, default=15.0, help="wall-clock minutes (NVIDIA's experiment: 15)")
    p.add_argument("--target-speedup", type=float, default=2.0)
    p.add_argument("--min-speedup", type=float, default=1.0, help="the verifier's acceptance threshold")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", type=Path, help="default ch20/runs/<problem>-<generator>-<device>")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--rounds", type=int, default=16, help="timed rounds per verification")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per verification")
    p.add_argument("--batch", type=int, default=4, help="search: candidates per iteration")
    p.add_argument("--seed", type=int, default=0, help="search: its random choices (inputs stay secret)")
    p.add_argument("--base-url", help="llm: e.g. http://localhost:8000/v1 (or AISP_LLM_BASE_URL)")
    p.add_argument("--model", help="llm: the served model's name (or AISP_LLM_MODEL)")
    p.add_argument("--api-key", help="llm: bearer token (or AISP_LLM_API_KEY)")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--max-tokens", type=int, default=8192)
    p.add_argument("--request-timeout", type=float, default=900.0, help="llm: seconds per request")
    p.add_argument("--retries", type=int, default=2, help="llm: retries of a failed request (with backoff)")
    args = p.parse_args(argv)
    if args.max_iters < 1 or args.trials < 1 or args.batch < 1:
        p.error("--max-iters, --trials and --batch must be at least 1")
    if args.rounds < 2:
        p.error("--rounds must be at least 2")
    if args.request_timeout <= 0 or args.retries < 0:
        p.error("--request-timeout must be positive and --retries at least 0")
    options = {"base_url": args.base_url, "model": args.model, "api_key": args.api_key,
               "temperature": args.temperature, "max_tokens": args.max_tokens, "request_timeout": args.request_timeout,
               "retries": args.retries} if args.generator == "llm" else {}
    try:
        result = run_loop(args.problem, args.generator, max_iters=args.max_iters, budget_min=args.budget_min,
                          target_speedup=args.target_speedup, device=args.device, out=args.out, trials=args.trials,
                          timeout=args.timeout, min_speedup=args.min_speedup, batch=args.batch, seed=args.seed,
                          generator_options=options, rounds=args.rounds)
    except (UsageError, ProblemError, GeneratorError) as exc:
        print(f"ch20.ai_kernel_generator: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    if result.get("endpoint_unreachable"):
        print(f"ch20.ai_kernel_generator: {result['stop']}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return 0 if result.get("certificate") else 1


if __name__ == "__main__":
    sys.exit(main())
