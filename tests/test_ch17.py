"""Chapter 17: the scalability model on hand-computed cases, the step-time fit, the routers, the simulated worker's
schedule and page accounting, real engines behind a router giving the single engine's outputs, early rejection
in a (deterministic) simulation, and the commands end to end at the tiny size (no speed asserted)."""
import json
import math

import pytest
import torch

from ch17 import admission, capacity_plan, routing, step_model
from ch17.admission import PredictedTTFT
from ch17.capacity_plan import Traffic
from ch17.cluster import EngineWorker, SimWorker, run_cluster
from ch17.routers import LeastTokens, PrefixAffinity, RoundRobin
from ch17.step_model import StepModel
from inference.generate import generate_paged, new_paged_cache
from inference.loadgen import Workload, poisson_requests
from inference.metrics import summarize
from inference.model import CONFIGS, Decoder
from inference.scheduler import Engine, Request


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# ---- the scalability model, by hand ----

def test_decode_pool_hand_case():
    # t(B) = 10 ms + 1 ms x B: the TPOT SLO of 50 ms allows B = 40 (t = 50 ms): 800 tokens/s per worker;
    # 10 req/s x 100 output tokens = 1000 tokens/s -> 2 workers at 62.5%.
    sm = StepModel(0.010, 0.001, 0.0, budget=512)
    d = capacity_plan.decode_workers(sm, Traffic("t", 10, 100, 100), slo_tpot=0.05, max_batch=64, kv_tokens=10**6)
    assert d["batch"] == 40 and d["workers"] == 2
    assert d["tokens_per_s_per_worker"] == pytest.approx(800) and d["utilization"] == pytest.approx(0.625)
    # the KV pool caps the batch: 4000 tokens / (100 + 100) per request = 20 sequences
    assert capacity_plan.decode_workers(sm, Traffic("t", 10, 100, 100), 0.05, 64, 4000)["batch"] == 20
    assert capacity_plan.decode_workers(sm, Traffic("t", 10, 100, 100), 0.005, 64, 10**6)["workers"] is None


def test_prefill_pool_hand_case():
    # a 100-token prompt takes 0.1 s; at 5 req/s and TTFT p99 <= 0.5 s: 1 worker (rho 0.5) gives
    # 0.1 + 0.1/0.5 ln(50) = 0.88 s, 2 (rho 0.25) 0.1 + 0.1/0.75 ln(25) = 0.53 s, 3 (rho 1/6) 0.44 s -> 3
    sm = StepModel(0.0, 0.001, 0.0, budget=512)
    assert capacity_plan.ttft_percentile(0.1, 0.5) == pytest.approx(0.1 + 0.2 * math.log(50))
    assert capacity_plan.ttft_percentile(0.1, 0.005) == pytest.approx(0.1)  # below 1%: no wait at p99
    assert capacity_plan.ttft_percentile(0.1, 1.0) == math.inf
    p = capacity_plan.prefill_workers(sm, Traffic("t", 5, 100, 10), slo_ttft=0.5)
    assert p["workers"] == 3 and p["utilization"] == pytest.approx(5 * 0.1 / 3)
    # half the prompt from the prefix cache halves the service time: 0.05 s, rho 0.25 -> 1 worker: 0.05 + ...
    half = capacity_plan.prefill_workers(sm, Traffic("t", 5, 100, 10, prefix_hit=0.5), slo_ttft=0.5)
    assert half["service_s"] == pytest.approx(0.05) and half["workers"] == 1
    assert capacity_plan.prefill_workers(sm, Traffic("t", 5, 1000, 10), slo_ttft=0.5)["workers"] is None


def test_prefill_time_chunks_by_budget():
    sm = StepModel(0.01, 0.0, 0.0, budget=100)
    assert sm.prefill_time(250) == pytest.approx(0.03)  # 3 chunks
    assert sm.prefill_tokens_per_s() == pytest.approx(100 / 0.01)


def test_fit_recovers_a_known_model():
    true = StepModel(0.004, 2e-5, 3e-8, per_row_s=1e-4)
    shapes = [(16, 16, 1), (64, 64, 1), (512, 512, 1), (512, 512, 4), (1, 100, 1), (8, 4000, 8), (32, 30000, 32)]
    sm, worst = step_model.fit([(n, kv, k, true.step_time(n, kv, k)) for n, kv, k in shapes], 512, 32)
    assert worst < 1e-6
    assert (sm.fixed_s, sm.per_token_s, sm.per_kv_s, sm.per_row_s) == pytest.approx((0.004, 2e-5, 3e-8, 1e-4), rel=1e-6)
    # a negative term (noise) is dropped, not kept: here no time grows with kv
    flat = [(n, kv, k, 0.004 + 2e-5 * n - (1e-9 * kv if kv > 1000 else 0)) for n, kv, k in shapes]
    assert step_model.fit(flat, 512, 32)[0].per_kv_s == 0


# ---- routers ----

class _Load:
    def __init__(self, tokens=0):
        self.tokens = tokens

    def outstanding_tokens(self):
        return self.tokens


def _req(rid, prompt, out=4):
    return Request(rid, list(prompt), out)


def test_round_robin_and_least_tokens():
    ws = [_Load(5), _Load(1), _Load(3)]
    rr = RoundRobin(3)
    assert [rr(_req(i, [1]), ws) for i in range(5)] == [0, 1, 2, 0, 1]
    assert LeastTokens(3)(_req(0, [1]), ws) == 1


def test_prefix_affinity_is_sticky_consistent_and_bounded():
    prefixes = [[p] * 16 for p in range(200)]
    ws = [_Load() for _ in range(8)]
    pa = PrefixAffinity(8, key_tokens=16)
    homes = [pa(_req(0, p + [9, 9]), ws) for p in prefixes]
    assert homes == [pa(_req(1, p + [7]), ws) for p in prefixes]  # the suffix does not matter
    assert len(set(homes)) == 8                                     # prefixes spread over all workers
    # consistent hashing: a ninth worker takes ~1/9 of the prefixes and moves no others
    homes9 = [PrefixAffinity(9, key_tokens=16)(_req(0, p), ws + [_Load()]) for p in prefixes]
    moved = [a != b for a, b in zip(homes, homes9, strict=True)]
    assert all(b == 8 for a, b, m in zip(homes, homes9, moved, strict=True) if m) and sum(moved) < 0.25 * len(prefixes)
    # bounded loads: an overloaded home worker is skipped
    home = homes[0]
    ws[home].tokens = 1000
    assert pa(_req(0, prefixes[0]), ws) != home


# ---- the simulated worker ----

def test_sim_worker_schedule_by_hand():
    # 1 s per step whatever it carries; budget 4: a 10-token prompt prefills in 3 steps (its first token comes
    # with the third), then 2 decode steps for 3 tokens in all
    sm = StepModel(1.0, 0.0, 0.0, budget=4, max_batch=4)
    w = SimWorker(sm, kv_tokens=64, page_size=4, max_batch=4, token_budget=4)
    r = _req(0, range(10), out=3)
    res = run_cluster([w], RoundRobin(1), [r])
    assert (r.first_token_time, r.finish_time, res["makespan_s"]) == (3.0, 5.0, 5.0)


def test_sim_worker_prefix_hits_and_returns_every_page():
    sm = StepModel(1.0, 0.0, 0.0, budget=64, max_batch=4)
    w = SimWorker(sm, kv_tokens=64, page_size=4, max_batch=4, token_budget=64)
    shared = list(range(100, 112))  # 3 full pages
    first, second = _req(0, shared + [1, 2], 2), _req(1, shared + [3], 2)
    second.arrival = 10.0
    run_cluster([w], RoundRobin(1), [first, second])
    assert first.prefix_hit == 0 and second.prefix_hit == 12
    assert w.private_pages == 0 and w.outstanding == 0 and all(refs == 0 for refs in w.cached.values())
    # a pool too small for the cached pages and a new request evicts them (least recently used first)
    third = _req(2, list(range(200, 250)), 2)
    third.arrival = 20.0
    run_cluster([w], RoundRobin(1), [third])
    assert third.finish_time is not None and w.private_pages == 0


# ---- real engines behind a router ----

def test_engine_workers_give_the_single_engine_outputs():
    torch.manual_seed(0)
    model = Decoder(CONFIGS["tiny"]).eval()
    w = Workload(rate=200.0, n_requests=10, prompt_mean=10, output_mean=5, max_prompt=20, max_output=8,
                 prefix_len=16, n_prefixes=2, seed=3)
    reqs = poisson_requests(w, model.cfg.vocab)
    expected = generate_paged(model, [r.prompt for r in reqs], max_new_tokens=8)
    workers = [EngineWorker(Engine(model, new_paged_cache(model, 64, 8), max_batch=4, token_budget=32,
                                   prefix_cache=True)) for _ in range(3)]
    res = run_cluster(workers, PrefixAffinity(3, key_tokens=16), reqs)
    assert sum(res["taken"]) == 10 and res["prefix_hit_rate"] > 0
    for r, e in zip(reqs, expected, strict=True):
        assert r.output == e.output[:r.max_new_tokens]
        assert 0 <= r.arrival <= r.first_token_time <= r.finish_time <= res["makespan_s"]
    assert all(wk.engine.cache.allocator.n_free() + wk.engine.prefix.n_pages() == 64 for wk in workers)


# ---- early rejection ----

def _overload(policy, n_workers=4, rate=400.0):
    sm = StepModel(0.01, 1e-4, 0.0, budget=64, max_batch=8)
    reqs = poisson_requests(Workload(rate=rate, n_requests=300, prompt_mean=32, output_mean=8, max_prompt=64,
                                     max_output=16, seed=1), 1000)
    ws = [SimWorker(sm, kv_tokens=4096, page_size=8, max_batch=8, token_budget=64) for _ in range(n_workers)]
    adm = PredictedTTFT(sm, 0.1) if policy else None
    res = run_cluster(ws, LeastTokens(n_workers), reqs, adm)
    return summarize(reqs, res["makespan_s"], 0.1, 0.05), res, adm, reqs


def test_early_rejection_holds_goodput_under_overload():
    off, _, _, _ = _overload(False)
    on, res, adm, reqs = _overload(True)
    assert off["finished"] == 300 and res["rejected"] and on["finished"] == 300 - len(res["rejected"])
    assert on["goodput_requests_per_s"] > 1.5 * off["goodput_requests_per_s"]
    assert on["ttft_s"]["p99"] < off["ttft_s"]["p99"]
    err = admission.prediction_error(adm, reqs)
    assert 0.2 < err["median"] < 5  # the prediction is of the right order
    light, res_light, adm_light, reqs_light = _overload(True, rate=20.0)
    assert not res_light["rejected"]  # under light load nothing is refused
    # ... and the simulation follows the step model the prediction uses: the median prediction is exact
    assert admission.prediction_error(adm_light, reqs_light)["median"] == pytest.approx(1.0, rel=0.02)


# ---- the commands ----

@pytest.fixture
def sm_json(tmp_path):
    path = tmp_path / "sm.json"
    path.write_text(json.dumps({"step_model": StepModel(0.001, 5e-6, 1e-6, 64, 8, 2e-5).as_dict()}))
    return path


def test_step_model_command(tmp_path):
    out = tmp_path / "s.json"
    assert step_model.main(["--size", "tiny", "--device", "cpu", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["provenance"]["git_sha"] is not None and len(rep["samples"]) >= 5
    assert step_model.load(out).budget == 64


def test_routing_command(tmp_path, sm_json):
    out = tmp_path / "r.json"
    assert routing.main(["--size", "tiny", "--device", "cpu", "--step-model", str(sm_json), "--json", str(out),
                         "--policies", "round_robin,prefix_affinity"]) == 0
    rep = json.loads(out.read_text())
    assert set(rep["runs"]) == {"real N=3", "sim N=8"} and rep["goals"] and len(rep["simulator_vs_real"]) == 4
    assert all(p["step_measured_over_model"]["p50"] > 0 for p in rep["runs"]["real N=3"]["points"]["round_robin"])
    for run in rep["runs"].values():
        for points in run["points"].values():
            assert all(p["finished"] == p["requests"] for p in points)
    # structural, not a speed (the simulation is deterministic): affinity sends each prefix home, round-robin
    # spreads it over every worker
    sim = rep["runs"]["sim N=8"]["points"]
    assert sim["prefix_affinity"][0]["prefix_hit_rate"] > sim["round_robin"][0]["prefix_hit_rate"] + 0.2


def test_admission_and_capacity_commands(tmp_path, sm_json, capsys):
    out, png = tmp_path / "a.json", tmp_path / "a.png"
    assert admission.main(["--size", "tiny", "--device", "cpu", "--step-model", str(sm_json), "--modes", "sim",
                           "--json", str(out), "--plot", str(png)]) == 0
    rep = json.loads(out.read_text())
    sim = rep["runs"]["sim N=8"]["points"]
    assert sim["early_rejection"][-1]["rejected"] > 0 and sim["admit_all"][-1]["rejected"] == 0
    out = tmp_path / "c.json"
    assert capacity_plan.main(["--step-model", str(sm_json), "--size", "tiny", "--json", str(out)]) == 0
    plans = json.loads(out.read_text())["plans"]
    assert [p["traffic"]["name"] for p in plans] == [m.name for m in capacity_plan.MIXES]
    assert "| chat |" in capsys.readouterr().out


def test_bad_input_exits_2(tmp_path, capsys):
    assert capacity_plan.main(["--step-model", str(tmp_path / "missing.json")]) == 2
    assert capacity_plan.main(["--prefix-hit", "1.5", "--step-model", "x"]) == 2
    assert routing.main(["--modes", "both", "--size", "tiny", "--device", "cpu"]) == 2
    assert routing.main(["--size", "tiny", "--step-model", str(tmp_path / "missing.json")]) == 2
    (tmp_path / "bad.json").write_text("{}")
    assert admission.main(["--size", "tiny", "--step-model", str(tmp_path / "bad.json")]) == 2
    assert admission.main(["--margin", "0", "--size", "tiny", "--device", "cpu"]) == 2
    if not torch.cuda.is_available():
        assert step_model.main(["--size", "tiny", "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        routing.main(["--size", "huge"])
    assert e.value.code == 2
