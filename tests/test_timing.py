import math
import time

import pytest
import torch

from harness.timing import Stats, TimingConfig, measure, median_rel_error, quantile, should_stop


def test_quantile_interpolates():
    xs = [1.0, 2.0, 3.0, 4.0]
    assert quantile(xs, 0.5) == 2.5
    assert quantile(xs, 0.0) == 1.0 and quantile(xs, 1.0) == 4.0


def test_median_rel_error_shrinks_with_more_samples():
    few = [1.0, 1.1, 0.9, 1.05, 0.95] * 2
    many = few * 20
    assert median_rel_error(many) < median_rel_error(few)
    assert median_rel_error([1.0]) == math.inf
    assert median_rel_error([1.0] * 10) == 0.0


def test_stop_rule_needs_min_samples_and_time_then_stops_when_converged():
    cfg = TimingConfig(min_samples=10, min_time_s=0.1, max_time_s=10, max_rel_error=0.005)
    steady = [0.02] * 10
    assert should_stop(steady[:5], 0.5, cfg) == (False, False)          # too few samples
    assert should_stop([0.001] * 10, 0.05, cfg) == (False, False)      # too little time measured
    assert should_stop(steady, 0.5, cfg) == (True, True)


def test_stop_rule_gives_up_at_max_time_and_says_so():
    cfg = TimingConfig(max_time_s=1.0, max_rel_error=0.005)
    noisy = [0.01, 0.03, 0.02, 0.05, 0.01] * 3
    assert should_stop(noisy, 0.5, cfg) == (False, False)
    assert should_stop(noisy, 1.5, cfg) == (True, False)


def test_measure_on_cpu_reports_the_time_of_the_call():
    stats = measure(lambda: time.sleep(0.002), torch.device("cpu"), TimingConfig(max_time_s=0.5))
    assert isinstance(stats, Stats)
    assert stats.median_ms >= 1.9   # at least the sleep; how much more depends on the machine's load
    assert stats.samples >= 3 and stats.iqr_ms >= 0


def test_short_calls_are_grouped_into_samples():
    stats = measure(lambda: None, torch.device("cpu"), TimingConfig(max_time_s=0.2))
    assert stats.reps > 1


@pytest.mark.gpu
def test_side_stream_work_is_counted():
    """Work left running on another stream must land inside the measurement."""
    dev = torch.device("cuda")
    a = torch.randn(4096, 4096, device=dev)
    side = torch.cuda.Stream()

    def on_side_stream():
        with torch.cuda.stream(side):
            for _ in range(10):
                a @ a
    direct = measure(lambda: [a @ a for _ in range(10)], dev, TimingConfig(max_time_s=1))
    hidden = measure(on_side_stream, dev, TimingConfig(max_time_s=1))
    assert hidden.median_ms > 0.8 * direct.median_ms


@pytest.mark.gpu
def test_cold_l2_runs_one_call_per_sample():
    x = torch.randn(1 << 20, device="cuda")
    stats = measure(lambda: x * 2, torch.device("cuda"), TimingConfig(cold_l2=True, max_time_s=0.5))
    assert stats.reps == 1
