"""KernelBench-format problems the verifier was not built around (tests/ch20_unseen/), each verified with
the reference itself as the candidate (Model copied as ModelNew: accepted, about 1x) and with wrong
candidates (rejected, with a reason that names what is wrong); bad problem files (tests/ch20_unseen/bad/)
are usage errors: ProblemError in the library, exit 2 and one line from the CLI, no process left behind.

Formats: a named tuple of float and int64 outputs (torch.max), bool (x > 0), 0-d with int64 targets
(cross-entropy), a non-contiguous view aliasing the input (a slice), a reference that modifies its input
in place, a float and an int from get_inputs, parameters from get_init_inputs (Linear, Conv2d,
BatchNorm2d in training mode, GroupNorm, LSTM), a nested tuple (LSTM), cumsum/cumprod (a default
distribution left out), float64 and float16 inputs side by side; per-call state
as a bad reference (dropout in training mode through the CLI). One reference child, one checker and one
candidate child each import torch (about 1.6 s of CPU each), which is what bounds how many fit here.
"""
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ch20._process import owned_pids
from ch20.problem import ProblemError, load_problem
from ch20.verify import run_reference, verify

REPO = Path(__file__).resolve().parent.parent
UNSEEN = REPO / "tests/ch20_unseen"
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


def _reference_candidate(problem: str, tmp: Path) -> Path:
    path = tmp / f"{problem}__reference.py"
    path.write_text((UNSEEN / f"{problem}.py").read_text() + "\n\nModelNew = Model\n")
    return path


def _verify_problem(name: str, tmp: Path) -> dict:
    reference = run_reference(load_problem(UNSEEN / f"{name}.py"), device="cpu", size="tiny", trials=1)
    try:
        out = {}
        for cand in CASES[name]:
            path = _reference_candidate(name, tmp) if cand == "reference" else CANDIDATES / f"{name}__{cand}.py"
            out[(name, cand)] = verify(None, path, reference=reference, timeout=120.0, min_speedup=0.0, rounds=ROUNDS)
        return out
    finally:
        reference.close()


def _bad_problem(name: str, tmp: Path) -> dict:
    try:
        reference = run_reference(load_problem(UNSEEN / f"bad/{name}.py"), device="cpu", size="tiny", trials=1,
                                  timeout=60)
    except ProblemError as exc:
        return {("bad", name): str(exc)}
    reference.close()
    return {("bad", name): None}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    """{(problem, candidate): verdict} and {("bad", file): the ProblemError's text}; each problem against one
    live reference of its own."""
    tmp = tmp_path_factory.mktemp("unseen")
    work = [(_verify_problem, n) for n in sorted(CASES, key=lambda n: -len(CASES[n]))] + [(_bad_problem, n) for n in BAD]
    results = {}
    # three at a time: a verification's timed rounds take turns with the others' (ROUND_LOCK), while children
    # importing torch (most of this file's time) overlap them
    with ThreadPoolExecutor(3) as pool:
        for part in pool.map(lambda item: item[0](item[1], tmp), work):
            results.update(part)
    return results


@pytest.mark.parametrize("case", [(p, c) for p in CASES for c in CASES[p]], ids=lambda c: f"{c[0]}-{c[1]}")
def test_verdict(verdicts, case):
    correct, words = CASES[case[0]][case[1]]
    v = verdicts[case]
    assert v["correct"] == correct and v["accepted"] == correct, v["reason"]
    assert words in v["reason"], v["reason"]
    assert not v["tampered"], v["reason"]
    if case[1] == "reference":   # the same code on both sides: no speedup either way (loose: a loaded machine)
        assert 0.5 < v["speedup"] < 2.0, v["speedup"]
        assert v["provenance"]["distributions_left_out"].keys() == set(LEFT_OUT.get(case[0], []))


def test_dtypes_are_kept_as_drawn(verdicts):
    assert verdicts[("mixed_precision", "reference")]["dtype"] == "float64"   # the first float input's
    assert verdicts[("max_with_indices", "reference")]["tolerance"]["dtype"] == "float32"


@pytest.mark.parametrize("name", list(BAD))
def test_bad_problem_is_a_problem_error(verdicts, name):
    text = verdicts[("bad", name)]
    assert text is not None, f"{name} was accepted as a problem"
    assert BAD[name] in text.splitlines()[0], text


def test_no_child_outlives_the_verifications(verdicts):
    assert not owned_pids()


def _children_of_this_repo() -> set[int]:
    """Verifier children started from this checkout (their command line names the repository)."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(REPO).encode() in cmd and b"-I" in cmd:
                found.add(int(entry.name))
    return found


def test_cli_nondeterministic_reference_exits_2_with_one_line(tmp_path):
    before = _children_of_this_repo()
    problem = UNSEEN / "bad/dropout_train.py"
    candidate = tmp_path / "dropout_copy.py"
    candidate.write_text(problem.read_text() + "\n\nModelNew = Model\n")
    done = subprocess.run([sys.executable, "-m", "ch20.verify", "--device", "cpu", "--size", "tiny", "--problem",
                           str(problem), "--candidate", str(candidate), "--min-speedup", "0",
                           "--trials", "1", "--rounds", "2", "--json", str(tmp_path / "v.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "another output for the same" in done.stderr
    for _ in range(20):   # children are killed as the verifier exits; give the kernel a moment to reap them
        if not _children_of_this_repo() - before:
            break
        time.sleep(0.1)
    assert not _children_of_this_repo() - before
