"""Shared by the ch20 verifier tests: verdicts for many candidates against two live references."""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ch20.problem import load_problem
from ch20.verify import run_reference, verify

CANDIDATES = Path(__file__).resolve().parent / "ch20_candidates"
HANG_TIMEOUT = 8.0
ROUNDS = 4   # the minimum is set by the distributions (6 for softmax) plus a warm-up round


def verdicts_for(cases, problem_path: Path, prefix: str) -> dict:
    """{name: verdict}, two candidates at a time, each half of them against a reference of its own."""
    problem = load_problem(problem_path)
    names = list(cases)

    def run_half(half):
        reference = run_reference(problem, device="cpu", size="tiny", trials=1)
        try:
            out = {}
            for name in half:
                timeout = HANG_TIMEOUT if name == "hang" else 120.0
                min_speedup = 1.0 if name == "patched_clock" else 0.0
                out[name] = verify(problem, CANDIDATES / f"{prefix}{name}.py", reference=reference, timeout=timeout,
                                   min_speedup=min_speedup, rounds=ROUNDS)
            return out
        finally:
            reference.close()

    results = {}
    with ThreadPoolExecutor(2) as pool:
        for part in pool.map(run_half, [names[0::2], names[1::2]]):
            results.update(part)
    return results
