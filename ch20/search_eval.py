"""The search generator over a whole problem set, scored as KernelBench's fast_p against two baselines.

    python -m ch20.evaluate --problems ch20/problems --search OUT_DIR [--budget 4] [--only a,b] [--json R.json]

For each problem: one live PyTorch-eager reference (ch20.session), and the search generator's candidates
verified against it until --budget of them are verified (ch20.verify, unchanged); the fastest correct one
is saved as OUT_DIR/<problem>/best_kernel.py with every attempt in attempts.jsonl. That kernel is then
verified again against a second reference: the same problem with its Model's forward wrapped in
torch.compile (a generated problem file, OUT_DIR/_compiled/<problem>.py: same inputs, same parameters,
same tolerance). The eager speedup is the best of --budget measurements against one reference, so it is
optimistic by the selection; the torch.compile figure is a single fresh verification.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from ch20.generators import Attempt, Context, GeneratorError, make_generator
from ch20.problem import ProblemError, load_problem
from ch20.reward import reward_from_verdict
from ch20.verify import UsageError, run_reference, verify
from harness.device import pick_device, provenance

KEPT = ("compiled", "correct", "accepted", "reason", "baseline_ms", "candidate_ms", "speedup", "speedup_ci",
        "suspect", "max_abs_err", "elapsed_s")

COMPILED_PROBLEM = '''"""{title} (the reference's forward under torch.compile: the stronger baseline)."""
import importlib.util
import sys

import torch

_spec = importlib.util.spec_from_file_location("ch20_eager_{name}", {path!r})
_eager = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _eager
_spec.loader.exec_module(_eager)
globals().update({{k: v for k, v in vars(_eager).items() if k.isupper() or k in
                  ("get_inputs", "get_init_inputs", "flops", "bytes_moved")}})
_compiled_forward = torch.compile(_eager.Model.forward)


class Model(_eager.Model):                         # parameters drawn exactly as the eager Model draws them
    def forward(self, *args):
        return _compiled_forward(self, *args)
'''


def compiled_problem(problem, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{problem.name}.py"
    path.write_text(COMPILED_PROBLEM.format(title=problem.title.rstrip("."), name=problem.name, path=str(problem.path)))
    return path


def search_one(problem, out: Path, *, dev: str, size: str, budget: int, batch: int, rounds: int, trials: int,
               timeout: float, seed: int, log=print) -> tuple[dict, Path | None]:
    """Search one problem under a budget of verified candidates; the row and the best kernel's path."""
    started = time.monotonic()
    row = {"problem": problem.name, "family": problem.family, "candidates": 0, "correct_candidates": 0,
           "compiled": False, "correct": False, "speedup": None, "reason": "", "best_label": None}
    ctx = Context(problem=problem, device=dev, size=size, dtype=str(problem.dtype(size)).replace("torch.", ""))
    try:
        gen = make_generator("search", ctx, batch=batch, seed=seed)
    except GeneratorError as exc:
        row["reason"] = f"no search family: {exc}"
        return row, None
    out.mkdir(parents=True, exist_ok=True)
    history: list[Attempt] = []
    reference = run_reference(problem, device=dev, size=size, trials=trials)
    try:
        with tempfile.TemporaryDirectory(prefix="ch20-eval-") as tmp, (out / "attempts.jsonl").open("w") as logf:
            while len(history) < budget:
                proposals = gen.propose(history)[: budget - len(history)]
                if not proposals:
                    break
                for prop in proposals:
                    path = Path(tmp) / f"cand{len(history):03d}.py"
                    path.write_text(prop.source)
                    v = verify(problem, path, reference=reference, timeout=timeout, min_speedup=0.0, rounds=rounds)
                    history.append(Attempt(len(history), prop, v, reward_from_verdict(v)))
                    logf.write(json.dumps({"label": prop.label, "params": prop.params, "reward": history[-1].reward,
                                           "verdict": {k: v.get(k) for k in KEPT}}, default=str) + "\n")
                    log(f"  {problem.name:<20} {prop.label:<28} "
                        + (f"{v['speedup']:.3g}x" if v.get("correct") else f"FAIL {v['reason'][:80]}"))
    finally:
        reference.close()
    correct = [a for a in history if a.verdict.get("correct")]
    row.update(candidates=len(history), correct_candidates=len(correct), compiled=any(a.verdict.get("compiled")
                                                                                       for a in history))
    if not correct:
        row["reason"] = history[-1].verdict.get("reason", "no candidate") if history else "no candidate"
        row["elapsed_s"] = round(time.monotonic() - started, 1)
        return row, None
    best = max(correct, key=lambda a: a.verdict.get("speedup") or 0.0)
    kernel = out / "best_kernel.py"
    kernel.write_text(best.proposal.source)
    row.update(correct=True, speedup=best.verdict["speedup"], best_label=best.proposal.label,
               best_params=best.proposal.params, baseline_ms=best.verdict.get("baseline_ms"),
               candidate_ms=best.verdict.get("candidate_ms"), speedup_ci=best.verdict.get("speedup_ci"),
               suspect=best.verdict.get("suspect"), elapsed_s=round(time.monotonic() - started, 1))
    return row, kernel


def search_all(problems: Path, out: Path, *, device: str = "auto", size: str | None = None, budget: int = 4,
               batch: int = 2, rounds: int = 8, trials: int = 5, timeout: float = 300.0, only=(),
               compile_baseline: bool = True, seed: int = 0, log=print, progress=None) -> dict:
    """Every problem in turn; `progress(result so far)` after each, so a run cut short keeps what it measured."""
    from ch20.evaluate import fast_p, scores
    try:
        dev = pick_device(device).type
    except (RuntimeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    size = size or ("full" if dev == "cuda" else "tiny")
    files = sorted(f for f in Path(problems).glob("*.py") if not f.name.startswith("_"))
    unknown = set(only) - {f.stem for f in files}
    if unknown:
        raise UsageError(f"--only names no problem in {problems}: {', '.join(sorted(unknown))}")
    files = [f for f in files if not only or f.stem in only]
    if not files:
        raise UsageError(f"no problem files in {problems}")
    started = time.monotonic()
    out = Path(out)
    rows = []

    def result():
        return {"problems": len(rows), "scores": fast_p(rows), "by_baseline": scores(rows), "rows": rows,
                "search": {"budget": budget, "batch": batch, "rounds": rounds, "trials": trials, "size": size,
                           "device": dev, "seed": seed, "compile_baseline": compile_baseline},
                "complete": len(rows) == len(files), "provenance": prov,
                "elapsed_s": round(time.monotonic() - started, 1)}
    prov = provenance(torch.device(dev))
    for f in files:
        if progress and rows:
            progress(result())
        try:
            problem = load_problem(f)
            row, kernel = search_one(problem, out / problem.name, dev=dev, size=size, budget=budget, batch=batch,
                                     rounds=rounds, trials=trials, timeout=timeout, seed=seed, log=log)
        except ProblemError as exc:
            rows.append({"problem": f.stem, "compiled": False, "correct": False, "speedup": None,
                         "reason": f"problem error: {str(exc).splitlines()[0]}"})
            continue
        if compile_baseline and kernel is not None:
            t0 = time.monotonic()
            try:
                v = verify(compiled_problem(problem, out / "_compiled"), kernel, device=dev, size=size, trials=trials,
                           timeout=timeout, min_speedup=0.0, rounds=rounds)
                row["vs_compile"] = {k: v.get(k) for k in KEPT}
            except ProblemError as exc:   # torch.compile failed on the reference itself
                row["vs_compile"] = {"correct": False, "speedup": None,
                                   "reason": f"torch.compile reference failed: {str(exc).splitlines()[0]}"}
            row["vs_compile"]["elapsed_s"] = round(time.monotonic() - t0, 1)
            c = row["vs_compile"]
            log(f"  {problem.name:<20} vs torch.compile: "
                + (f"{c['speedup']:.3g}x" if c.get("correct") else f"FAIL {c.get('reason', '')[:80]}"))
        elif compile_baseline:
            row["vs_compile"] = {"correct": False, "speedup": None, "reason": "no correct kernel to compare"}
        rows.append(row)
    return result()
