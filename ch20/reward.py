"""The staged reward of RL kernel tuning, and GRPO's group-relative advantages.

    reward = 0                          the candidate does not compile (or import)
           = 0.1                        it runs but is wrong (or crashes, hangs, tampers with the verifier)
           = 1 + clip(log2(speedup), 0, 3)   it is correct: 1 for matching the reference's speed or
                                             being slower, +1 per doubling, capped at 8x

The stages keep a signal alive early in training, when almost nothing is correct, without letting
"runs but wrong" ever beat "correct". The bonus is logarithmic and capped so that one suspect outlier
cannot dominate a group; a speedup the verifier flags as suspect earns no bonus at all.

GRPO scores each sample against its own group (the k candidates generated for one prompt):
A_i = (r_i - mean(r)) / (std(r) + eps). A group whose rewards are all equal carries no information and
gets zero advantages, never NaN.
"""
from __future__ import annotations

import math

WRONG_REWARD = 0.1
BONUS_CAP = 3.0


def staged_reward(compiled: bool, correct: bool, speedup: float | None = None, *, suspect: bool = False) -> float:
    if not compiled:
        return 0.0
    if not correct:
        return WRONG_REWARD
    if suspect or not speedup or not math.isfinite(speedup) or speedup <= 0:
        return 1.0
    return 1.0 + min(max(math.log2(speedup), 0.0), BONUS_CAP)


def reward_from_verdict(verdict: dict) -> float:
    """The reward of one verifier verdict (ch20.verify's JSON). Tampering with the verifier scores as wrong."""
    if verdict.get("tampered"):
        return WRONG_REWARD
    return staged_reward(verdict.get("compiled", False), verdict.get("correct", False), verdict.get("speedup"),
                         suspect=bool(verdict.get("suspect")))


def group_advantages(rewards: list[float], eps: float = 1e-6) -> list[float]:
    """GRPO's advantages for one group; finite for any finite rewards, zeros for a zero-variance group."""
    n = len(rewards)
    if n == 0:
        return []
    mean = sum(r / n for r in rewards)
    dev = [r - mean for r in rewards]
    scale = max(abs(d) for d in dev)
    if scale == 0.0:
        return [0.0] * n
    std = scale * math.sqrt(sum((d / scale) ** 2 for d in dev) / n)   # scaled, so huge rewards cannot overflow
    return [d / (std + eps) for d in dev]


def rank(verdicts: list[dict]) -> list[int]:
    """Indices of a batch of verdicts, best first: by reward, then by the faster candidate time."""
    def key(i):
        v = verdicts[i]
        return (-reward_from_verdict(v), v.get("candidate_ms") or math.inf)
    return sorted(range(len(verdicts)), key=key)


def reward_fn(verdicts: list[dict]) -> list[float]:
    """The shape an RL trainer's reward hook takes: one float per completion."""
    return [reward_from_verdict(v) for v in verdicts]
