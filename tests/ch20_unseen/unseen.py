"""The problems here, verified: what each verdict must be, and the runs that get them.

tests/test_ch20_unseen_problems.py runs this on the CPU; on a GPU node (gpu_check.sh):

    python tests/ch20_unseen/unseen.py --device cuda --json OUT.json

prints one line per verdict and exits 1 when any differs from what is expected here.
"""
import argparse
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ch20.problem import ProblemError, load_problem
from ch20.verify import run_reference, verify

UNSEEN = Path(__file__).resolve().parent
CANDIDATES = UNSEEN / "candidates"
ROUNDS = 2          # the verifier still runs its minimum (a warm-up round and 3 more)

# problem: {candidate: (correct, words its reason must contain)}; "reference" is Model copied as ModelNew,
# which must be accepted; other right candidates too; wrong ones rejected.
CASES = {
    "max_with_indices": {"reference": (True, "correct on"), "plain_tuple": (True, "correct on"),
                         "block_local_index": (False, "output 1: ")},
    "positive_mask": {"reference": (True, "correct on"), "ge": (False, "sparse inputs")},
    "cross_entropy": {"reference": (True, "correct on")},
    "slice_view": {"reference": (True, "correct on")},
    "inplace_add_relu": {"reference": (True, "correct on"), "out_of_place": (True, "correct on"),
                         "other_mutation": (False, "modified in place")},
    "scaled_softmax_args": {"reference": (True, "correct on")},
    "conv_bn_relu_groupnorm": {"reference": (True, "correct on"), "batch_stats": (True, "correct on"),
                               "running_stats": (False, "differ beyond")},
    "lstm": {"reference": (True, "correct on")},
    "prefix_scans": {"reference": (True, "correct on"), "float16": (False, "output 1: ")},
    "mixed_precision": {"reference": (True, "correct on"),
                        "float32": (False, "dtype ['float32', 'float16'] != reference ['float64', 'float16']")},
}
# Default distributions the reference overflows on are left out (these files declare none, as KernelBench's)
LEFT_OUT = {"prefix_scans": ["large"]}
# bad problem file: words the one-line ProblemError must contain (dropout_train goes through the CLI below)
BAD = {
    "no_model": "lacks Model",
    "get_init_inputs_raises": "(get_init_inputs): ValueError: bad init arguments",
    "call_counter": "another output for the same",
}


def reference_candidate(problem: str, tmp: Path) -> Path:
    path = tmp / f"{problem}__reference.py"
    path.write_text((UNSEEN / f"{problem}.py").read_text() + "\n\nModelNew = Model\n")
    return path


def verify_problem(name: str, tmp: Path, device: str) -> dict:
    """{(problem, candidate): verdict}, every candidate against one live reference."""
    reference = run_reference(load_problem(UNSEEN / f"{name}.py"), device=device,
                              size="tiny" if device == "cpu" else "full", trials=1)
    try:
        out = {}
        for cand in CASES[name]:
            path = reference_candidate(name, tmp) if cand == "reference" else CANDIDATES / f"{name}__{cand}.py"
            out[(name, cand)] = verify(None, path, reference=reference, timeout=120.0, min_speedup=0.0, rounds=ROUNDS)
        return out
    finally:
        reference.close()


def bad_problem(name: str, tmp: Path, device: str) -> dict:
    """{("bad", file): the ProblemError's text, or None when the reference was accepted}."""
    try:
        reference = run_reference(load_problem(UNSEEN / f"bad/{name}.py"), device=device,
                                  size="tiny" if device == "cpu" else "full", trials=1, timeout=60)
    except ProblemError as exc:
        return {("bad", name): str(exc)}
    reference.close()
    return {("bad", name): None}


def verify_all(tmp: Path, device: str = "cpu", threads: int = 3) -> dict:
    """Everything above, `threads` at a time: a verification's timed rounds take turns with the others'
    (the verifier's round lock), while children importing torch (most of the time) overlap them."""
    work = [(verify_problem, n) for n in sorted(CASES, key=lambda n: -len(CASES[n]))] + [(bad_problem, n) for n in BAD]
    results = {}
    with ThreadPoolExecutor(threads) as pool:
        for part in pool.map(lambda item: item[0](item[1], tmp, device), work):
            results.update(part)
    return results


def mismatch(key, result) -> str:
    """Why a result differs from what is expected ("" when it is as expected)."""
    if key[0] == "bad":
        if result is None or BAD[key[1]] not in result.splitlines()[0]:
            return f"expected a usage error naming {BAD[key[1]]!r}, got {result!r}"
        return ""
    correct, words = CASES[key[0]][key[1]]
    if result["correct"] != correct or result["accepted"] != correct or words not in result["reason"]:
        return f"expected {'accepted' if correct else 'rejected'} ({words!r}), got: {result['reason']}"
    return ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--json", type=Path)
    p.add_argument("--rounds", type=int, default=ROUNDS, help=f"timed rounds per verification (default {ROUNDS}: "
                   "the test's; the verifier's own default is 16, what its timing claims rest on)")
    args = p.parse_args()
    globals()["ROUNDS"] = args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        results = verify_all(Path(tmp), args.device)
    rows = []
    for key, result in results.items():
        why = mismatch(key, result)
        row = {"problem": key[0], "candidate": key[1], "as_expected": not why, "why": why}
        if key[0] != "bad":
            row.update({k: result[k] for k in ("accepted", "correct", "reason", "speedup", "speedup_ci", "dtype")})
            row["distributions"] = result["provenance"].get("distributions")
        else:
            row["error"] = result
        rows.append(row)
        said = why or row.get("reason") or str(row.get("error")).splitlines()[0]
        print(f"{'ok ' if not why else 'BAD'} {key[0]}/{key[1]}: {said}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0 if all(r["as_expected"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
