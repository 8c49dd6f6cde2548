"""The load generator, the serving metrics and the benchmark CLI (tiny model, CPU, no timing assertions)."""
import json
import math

import pytest
import torch

from inference import bench
from inference.generate import generate_contiguous, new_paged_cache
from inference.loadgen import Workload, poisson_requests, serve
from inference.metrics import summarize
from inference.model import CONFIGS, Decoder
from inference.scheduler import Engine, Request


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_workload_is_seeded_and_shaped():
    w = Workload(rate=10.0, n_requests=200, prompt_mean=50, output_mean=20, prefix_len=8, n_prefixes=3, seed=4)
    a, b = poisson_requests(w, 1000), poisson_requests(w, 1000)
    assert [(r.arrival, r.prompt, r.max_new_tokens) for r in a] == [(r.arrival, r.prompt, r.max_new_tokens) for r in b]
    gaps = [y.arrival - x.arrival for x, y in zip(a, a[1:], strict=False)]
    assert all(g >= 0 for g in gaps) and 0.05 < sum(gaps) / len(gaps) < 0.2  # mean gap 1/rate
    assert len({tuple(r.prompt[:8]) for r in a}) == 3  # three shared system prompts
    assert 35 < sum(len(r.prompt) - 8 for r in a) / 200 < 65
    assert all(r.arrival == 0 for r in poisson_requests(Workload(rate=math.inf, n_requests=5), 100))


def test_metrics_from_known_timestamps():
    reqs = [Request(0, [1] * 4, 5, arrival=0.0), Request(1, [1] * 4, 3, arrival=1.0), Request(2, [1], 2, arrival=2.0)]
    for r, first, fin, n in zip(reqs, (1.0, 1.5, None), (3.0, 4.5, None), (5, 3, 0), strict=True):
        r.first_token_time, r.finish_time, r.output = first, fin, [0] * n
    s = summarize(reqs, makespan=5.0, slo_ttft=0.8, slo_tpot=2.0)
    assert s["finished"] == 2 and s["ttft_s"]["p50"] == pytest.approx(0.75)   # TTFTs 1.0 and 0.5
    assert s["tpot_s"]["mean"] == pytest.approx((0.5 + 1.5) / 2)               # 2 s / 4 tokens, 3 s / 2 tokens
    assert s["output_tokens_per_s"] == pytest.approx(8 / 5)
    assert s["goodput_requests_per_s"] == pytest.approx(1 / 5) and s["slo_attainment"] == pytest.approx(1 / 3)


def test_online_serving_gives_the_offline_outputs():
    torch.manual_seed(0)
    model = Decoder(CONFIGS["tiny"]).eval()
    reqs = poisson_requests(Workload(rate=200.0, n_requests=6, prompt_mean=12, output_mean=6, max_output=8,
                                     prefix_len=16, seed=1), model.cfg.vocab)
    engine = Engine(model, new_paged_cache(model, 32, 8), token_budget=32, prefix_cache=True)
    serve(engine, reqs)
    for r in reqs:
        assert r.output == generate_contiguous(model, r.prompt, r.max_new_tokens)[0]
        assert r.first_token_time >= r.arrival and r.finish_time >= r.first_token_time


def test_bench_cli(tmp_path, capsys):
    out = tmp_path / "b.json"
    rc = bench.main(["--variants", "continuous,static+contiguous", "--rates", "inf", "--requests", "4",
                     "--prompt-mean", "8", "--output-mean", "4", "--max-prompt", "16", "--max-output", "8",
                     "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["provenance"]["git_sha"] is not None or report["provenance"]["host"]
    point = report["series"]["static+contiguous"][0]
    assert point["finished"] == 4 and point["engine"]["page_size"] == 24
    for bad in (["--variants", "static+continuous"], ["--rates", "-1"], ["--kv-tokens", "8"]):
        assert bench.main(bad) == 2
    assert "bench:" in capsys.readouterr().err
