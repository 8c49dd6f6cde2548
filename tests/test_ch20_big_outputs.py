"""Outputs too large to check whole every round (KernelBench's sizes on a GPU): one call a round by sampled
chunks, whole in the first round only (outputs over HOST_WHOLE_BYTES), and every declared distribution still
checked at least once. The CPU stands in for the GPU with both thresholds lowered to zero."""
from pathlib import Path

import pytest

from ch20 import judge
from ch20.problem import load_problem
from ch20.verify import run_reference, verify

REPO = Path(__file__).resolve().parent.parent
SOFTMAX = load_problem(REPO / "ch20/problems/softmax.py")
CANDIDATES = REPO / "tests/ch20_candidates"


@pytest.fixture(scope="module")
def reference():
    ref = run_reference(SOFTMAX, device="cpu", size="tiny", trials=1)
    yield ref
    ref.close()


@pytest.fixture
def big(monkeypatch):
    monkeypatch.setattr(judge, "FULL_CHECK_BYTES", 0)
    monkeypatch.setattr(judge, "HOST_WHOLE_BYTES", 0)


def test_every_distribution_is_checked_when_outputs_are_big(reference, big):
    v = verify(None, CANDIDATES / "softmax_good.py", reference=reference, min_speedup=0.0, rounds=8)
    assert v["accepted"], v["reason"]
    assert {t["distribution"] for t in v["trials"]} == set(SOFTMAX.distributions)
    assert len(v["trials"]) == 9   # one checked call a round, the warm-up round's too


def test_a_kernel_wrong_on_one_distribution_is_caught_when_outputs_are_big(reference, big):
    v = verify(None, CANDIDATES / "softmax_overflow.py", reference=reference, min_speedup=0.0, rounds=8)
    assert not v["accepted"] and v["correct"] is False, v["reason"]


@pytest.fixture
def costly_inputs(reference, monkeypatch):
    """Small outputs of large inputs (a loss over a big batch): checking a call means drawing its inputs again
    and running the reference, so only a few calls a round are checked."""
    monkeypatch.setattr(reference, "in_bytes", 1 << 40)


def test_a_few_calls_a_round_are_checked_when_inputs_are_costly(reference, costly_inputs):
    v = verify(None, CANDIDATES / "softmax_good.py", reference=reference, min_speedup=0.0, rounds=8)
    assert v["accepted"], v["reason"]
    assert {t["distribution"] for t in v["trials"]} == set(SOFTMAX.distributions)
    rounds = v["timing"]["rounds"] + 1   # the warm-up round is checked too
    assert len(v["trials"]) <= judge.SAMPLED_CALLS * rounds
    assert all(t["whole"] for t in v["trials"])   # the outputs are small: each checked call whole


def test_a_kernel_wrong_on_one_distribution_is_caught_when_inputs_are_costly(reference, costly_inputs):
    v = verify(None, CANDIDATES / "softmax_overflow.py", reference=reference, min_speedup=0.0, rounds=8)
    assert not v["accepted"] and v["correct"] is False, v["reason"]
