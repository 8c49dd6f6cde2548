"""Verification draws from every declared input distribution; timing only from the first, so a median describes
one kind of input."""
import torch

from harness import Example
from harness.runner import run_example
from harness.timing import TimingConfig


def test_timing_draws_from_the_first_distribution_only():
    seen = []

    def setup(size, device, seed, dist):
        seen.append(dist)
        n = 64 if dist == "square" else 63   # a ragged shape, as a GEMM's edge-case distribution would have
        return {"x": torch.randn(n, generator=torch.Generator().manual_seed(seed))}

    ex = Example(title="dists", setup=setup, baseline=lambda x: x["x"] * 2,
                 optimized={"same": lambda x: x["x"] + x["x"]}, distributions=("square", "ragged"))
    fast = TimingConfig(warmup_s=0.0, min_warmup_calls=1, min_samples=3, min_time_s=0.0, max_time_s=0.05)
    res = run_example(ex, device=torch.device("cpu"), size="tiny", seed=0, timing=fast, trials=3)
    assert res.status == "ok", res.reason
    verified = seen[:4]                      # the first draw (output sizes) and the trials come first
    assert "ragged" in verified
    timed = seen[1 + 3:]                     # then the reserve and the timing pool
    assert timed and set(timed) == {"square"}
