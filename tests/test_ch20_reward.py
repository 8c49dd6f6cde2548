"""The staged reward and GRPO's group-relative advantages."""
import math

import pytest

from ch20.reward import group_advantages, rank, reward_fn, reward_from_verdict, staged_reward


def test_stages():
    assert staged_reward(False, False) == 0.0
    assert staged_reward(True, False, 5.0) == pytest.approx(0.1)      # wrong never earns a speedup bonus
    assert staged_reward(True, True, 0.5) == 1.0                      # correct but slower: no bonus, no penalty
    assert staged_reward(True, True, 1.0) == 1.0
    assert staged_reward(True, True, 2.0) == pytest.approx(2.0)
    assert staged_reward(True, True, 1000.0) == pytest.approx(4.0)    # capped
    assert staged_reward(True, True, 4.0, suspect=True) == 1.0        # a suspect speedup earns nothing extra
    assert staged_reward(True, True, None) == 1.0
    assert staged_reward(True, True, math.inf) == 1.0


def test_ordering_of_stages_holds_for_any_speedup():
    for s in (0.01, 0.9, 1.0, 3.0, 100.0):
        assert staged_reward(False, False, s) < staged_reward(True, False, s) < staged_reward(True, True, s)


def test_group_advantages():
    adv = group_advantages([0.0, 0.1, 1.0, 2.0])
    assert sum(adv) == pytest.approx(0.0, abs=1e-9)
    assert adv == sorted(adv)
    assert math.sqrt(sum(a * a for a in adv) / len(adv)) == pytest.approx(1.0, rel=1e-4)
    assert group_advantages([1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]       # zero variance: zeros, not NaN
    assert group_advantages([0.1]) == [0.0]
    assert group_advantages([]) == []
    assert all(math.isfinite(a) for a in group_advantages([1e-300, 2e-300, 1e300]))


def test_reward_from_verdicts_and_rank():
    verdicts = [
        {"compiled": False, "correct": False},
        {"compiled": True, "correct": True, "speedup": 1.5, "candidate_ms": 2.0, "suspect": []},
        {"compiled": True, "correct": False, "speedup": None},
        {"compiled": True, "correct": True, "speedup": 3.0, "candidate_ms": 1.0, "suspect": []},
        {"compiled": True, "correct": True, "speedup": 30.0, "candidate_ms": 0.1, "suspect": ["speedup 30x"]},
    ]
    assert reward_from_verdict({"compiled": True, "correct": True, "speedup": 50.0, "tampered": True}) == 0.1
    rewards = reward_fn(verdicts)
    assert rewards == [reward_from_verdict(v) for v in verdicts]
    assert rank(verdicts) == [3, 1, 4, 2, 0]
