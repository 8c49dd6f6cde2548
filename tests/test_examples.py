"""Every example in every chapter, at tiny size on the CPU: verified, or skipped with its reason.

A new chapter is tested by adding its files; nothing here needs to change.
"""
import pytest
import torch

from harness.device import pick_device
from harness.example import load_example
from harness.runner import run_example
from harness.sweep import resolve
from harness.timing import TimingConfig

EXAMPLES = resolve([])
QUICK = TimingConfig(warmup_s=0.0, min_warmup_calls=1, min_samples=3, min_time_s=0.0, max_time_s=0.05)


@pytest.mark.parametrize("ref", EXAMPLES, ids=[r.id for r in EXAMPLES])
def test_example_runs_at_tiny_size(ref):
    device = pick_device("auto")
    size = "tiny"
    result = run_example(load_example(ref.path), device=device, size=size, seed=1234, timing=QUICK, example_id=ref.id)
    if result.status == "skipped":
        assert result.reason, "a skip must say why"
        pytest.skip(result.reason)
    assert result.status == "ok", result.reason
    assert all(v.verified for v in result.variants if v.status != "skipped")
    optimized = [v for v in result.variants if v.role == "optimized"]
    if all(v.status == "skipped" for v in optimized):   # the baseline and references verified; ours need more
        pytest.skip("every optimized variant skipped: " + "; ".join(f"{v.name}: {v.reason}" for v in optimized))
    assert all(v.reason for v in result.variants if v.status == "skipped"), "a skipped variant must say why"
    assert result.speedup() is not None and result.speedup() > 0


def test_examples_are_discovered():
    assert len(EXAMPLES) >= 4
    assert torch.__version__
