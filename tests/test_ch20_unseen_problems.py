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
from pathlib import Path

import pytest
from ch20_unseen.unseen import BAD, CASES, LEFT_OUT, UNSEEN, mismatch, verify_all

from ch20._process import owned_pids

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    """{(problem, candidate): verdict} and {("bad", file): the ProblemError's text}; each problem against one
    live reference of its own."""
    return verify_all(tmp_path_factory.mktemp("unseen"), "cpu")


@pytest.mark.parametrize("case", [(p, c) for p in CASES for c in CASES[p]], ids=lambda c: f"{c[0]}-{c[1]}")
def test_verdict(verdicts, case):
    v = verdicts[case]
    assert not mismatch(case, v), mismatch(case, v)
    assert not v["tampered"], v["reason"]
    if case[1] == "reference":   # (timing honesty is tests/test_ch20_timing.py's, at 16 rounds; these run 3)
        assert v["provenance"]["distributions_left_out"].keys() == set(LEFT_OUT.get(case[0], []))


def test_dtypes_are_kept_as_drawn(verdicts):
    assert verdicts[("mixed_precision", "reference")]["dtype"] == "float64"   # the first float input's
    assert verdicts[("max_with_indices", "reference")]["tolerance"]["dtype"] == "float32"


@pytest.mark.parametrize("name", list(BAD))
def test_bad_problem_is_a_problem_error(verdicts, name):
    assert not mismatch(("bad", name), verdicts[("bad", name)])


def test_no_child_outlives_the_verifications(verdicts):
    assert not owned_pids()


def _processes_tagged(tag: str) -> set[int]:
    """Processes whose environment carries `tag` (the verifier's children inherit it): only this test's, even
    while other tests start verifiers of their own (pytest -n)."""
    found, needle = set(), f"CH20_TEST_TAG={tag}".encode()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if needle in Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def test_cli_nondeterministic_reference_exits_2_with_one_line(tmp_path):
    tag = tmp_path.name
    problem = UNSEEN / "bad/dropout_train.py"
    candidate = tmp_path / "dropout_copy.py"
    candidate.write_text(problem.read_text() + "\n\nModelNew = Model\n")
    done = subprocess.run([sys.executable, "-m", "ch20.verify", "--device", "cpu", "--size", "tiny", "--problem",
                           str(problem), "--candidate", str(candidate), "--min-speedup", "0",
                           "--trials", "1", "--rounds", "2", "--json", str(tmp_path / "v.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CH20_TEST_TAG": tag})
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "another output for the same" in done.stderr
    for _ in range(20):   # children are killed as the verifier exits; give the kernel a moment to reap them
        if not _processes_tagged(tag):
            break
        time.sleep(0.1)
    assert not _processes_tagged(tag)
