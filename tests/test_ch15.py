"""Chapter 15 on the CPU at tiny sizes: the MoE calculator against hand-computed cases, speculative decoding's
greedy output equal to the target's alone, the KV hand-off (in one process and across processes through shared
memory) giving the colocated engine's tokens, and no worker left behind when the router is killed."""
import json
import math
import multiprocessing
import os
import signal
import sys
import time

import pytest
import torch

from ch15 import disaggregated, kv_handoff, moe_parallel, speculative
from inference.bench import build_model
from inference.generate import generate_contiguous, new_paged_cache
from inference.loadgen import Workload, poisson_requests
from inference.scheduler import Engine, Request


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- MoE calculator
def test_moe_hand_computed():
    m = moe_parallel.MoEModel(experts=8, top_k=2, dim=4, ffn=8, moe_layers=3, bytes_per_elem=2)
    c = moe_parallel.Cluster(gpus=4, gpus_per_node=2, intra_gbps=100.0, inter_gbps=10.0)
    ep, tp = moe_parallel.compare(m, c, tokens=16)
    assert ep["placement"] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    # EP: 2 (dispatch + combine) * 16/4 tokens * top-2 * 4 dims * 2 bytes * 3/4 off-GPU = 96 bytes
    assert ep["send_bytes_per_gpu_per_layer"] == 96
    assert ep["inter_node_fraction"] == pytest.approx(2 / 3)  # 2 of the 3 other GPUs are on the other node
    assert ep["comm_s_per_layer"] == pytest.approx(32 / 100e9 + 64 / 10e9)
    assert ep["comm_s_per_forward"] == pytest.approx(3 * ep["comm_s_per_layer"])
    # TP: ring all-reduce of (16, 4) in 2 bytes: 2 * 3/4 * 128 = 192 bytes, across nodes at the slow link
    assert tp["send_bytes_per_gpu_per_layer"] == 192 and tp["comm_s_per_layer"] == pytest.approx(192 / 10e9)
    assert ep["send_bytes_per_gpu_per_layer"] / tp["send_bytes_per_gpu_per_layer"] == m.top_k / c.gpus
    # weights: 3 * 4 * 8 * 2 = 192 bytes per expert; 2 whole experts = 8 quarter experts
    assert ep["expert_weight_bytes_per_gpu_per_layer"] == tp["expert_weight_bytes_per_gpu_per_layer"] == 384
    assert moe_parallel.placement(5, 3) == [[0, 1], [2, 3], [4]]
    assert "error" in moe_parallel.expert_parallel(m, moe_parallel.Cluster(16, 8), 16)
    assert "error" in moe_parallel.tensor_parallel(m, moe_parallel.Cluster(3, 8), 16)


def test_moe_cli(tmp_path, capsys):
    out = tmp_path / "moe.json"
    assert moe_parallel.main(["--model", "mixtral-8x7b", "--gpus", "8", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["strategy"] for r in rows] == ["EP", "TP"] and rows[0]["experts_per_gpu"] == 1
    assert "EP/TP bytes sent = top_k/G = 0.250" in capsys.readouterr().out
    assert moe_parallel.main(["--gpus", "8"]) == 2
    assert moe_parallel.main(["--model", "mixtral-8x7b", "--gpus", "0"]) == 2


# ---------------------------------------------------------------- speculative decoding
@pytest.fixture(scope="module")
def spec_pair():
    return speculative.build_pair("tiny", 1, "cpu", torch.float32)


@pytest.mark.parametrize("eps", [0.0, 0.5, 3.0])
def test_speculative_equals_target_alone(spec_pair, eps):
    target, draft = spec_pair
    speculative.set_eps(target, eps)
    prompt = torch.randint(target.cfg.vocab, (12,), generator=torch.Generator().manual_seed(3)).tolist()
    ref, _ = generate_contiguous(target, prompt, 30)
    assert speculative.greedy_decode(target, prompt, 30) == ref
    for k in (1, 3, 8):
        out, st = speculative.speculative_decode(target, draft, prompt, 30, k)
        assert out == ref, (eps, k)
        if eps == 0.0:  # the target is the draft: everything proposed is accepted, k + 1 tokens a round
            assert st["accepted"] == st["proposed"] and st["rounds"] == math.ceil(29 / (k + 1))
    speculative.set_eps(target, 1.0)


def test_speculative_calibration(spec_pair):
    target, draft = spec_pair
    eps, table = speculative.calibrate(target, draft, list(range(1, 13)), n_new=16)
    assert [r["eps"] for r in table] == list(speculative.EPS_GRID) and table[0]["acceptance"] == 1.0
    assert eps[0] == 0.0 and eps == sorted(set(eps)) and len(eps) <= len(speculative.ACCEPTANCE_WANTED)
    assert target.layers[-1].feed_forward.w2.weight.equal(target.extra_base[-1][1])  # left at eps = 1


def test_speculative_model_and_cli(tmp_path):
    assert speculative.model_speedup(1.0, 4, 0.0) == 5 and speculative.model_speedup(0.0, 4, 0.25) == 0.5
    out = tmp_path / "spec.json"
    assert speculative.main(["--size", "tiny", "--device", "cpu", "--ks", "2", "--eps", "0,3", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["eps"], r["k"]) for r in rows] == [(0.0, 2), (3.0, 2)]
    assert rows[0]["acceptance"] == 1.0 > rows[1]["acceptance"] and all(r["identical_to_plain"] == "2/2" for r in rows)
    assert speculative.main(["--size", "tiny", "--device", "cpu", "--ks", "0"]) == 2


# ---------------------------------------------------------------- KV hand-off
def _requests(n=6, seed=0):
    w = Workload(rate=float("inf"), n_requests=n, prompt_mean=40, output_mean=12, max_prompt=100, max_output=24, seed=seed)
    return poisson_requests(w, 256)


def test_handoff_in_one_process_continues_exactly():
    """Prefill in one engine (pages held after the first token), pull the pages into another, decode there."""
    model = build_model("tiny", "cpu", torch.float32)
    ref = {r.rid: r.output for r in Engine(model, new_paged_cache(model, 128)).run(_requests())}
    p = model.output.weight
    src = kv_handoff.HoldingKVCache(model.cfg, 24, 16, p.dtype, p.device)
    pre = kv_handoff.PrefillEngine(model, src, token_budget=64)  # chunked: several steps per prompt
    dec = Engine(model, new_paged_cache(model, 128))
    reqs = _requests()
    max_new = {r.rid: r.max_new_tokens for r in reqs}
    for r in reqs:
        r.max_new_tokens = 1
    handed = pre.run(reqs)
    assert set(src.held) == set(max_new) and src.allocator.n_free() < src.n_pages
    for r in handed:
        n = len(r.prompt)
        secs, nbytes = kv_handoff.copy_pages(src.k, src.v, src.held[r.rid], dec.cache, r.rid, n)
        assert secs >= 0 and nbytes == 2 * math.ceil(n / 16) * 16 * _token_kv_bytes(model)
        assert kv_handoff.pages_equal(src.k, src.v, src.held[r.rid], dec.cache, r.rid, n)
        src.release(r.rid)
        r.max_new_tokens = max_new[r.rid]
        kv_handoff.adopt(dec, r)
    assert src.allocator.n_free() == src.n_pages  # every held page came back
    while dec.has_work():
        dec.step()
    assert {r.rid: r.output for r in handed} == ref
    assert dec.cache.allocator.n_free() == dec.cache.n_pages


def _token_kv_bytes(model):  # bytes of one token's keys (or values) over all layers
    c = model.cfg
    return c.n_layers * c.n_kv_heads * c.head_dim * 4


def test_holding_cache_gives_back_preempted_pages():
    """A finished prefill's pages are held; a preempted one's go back to the pool at once."""
    model = build_model("tiny", "cpu", torch.float32)
    p = model.output.weight
    cache = kv_handoff.HoldingKVCache(model.cfg, 5, 16, p.dtype, p.device)
    eng = kv_handoff.PrefillEngine(model, cache, token_budget=64)
    r0, r1 = Request(0, [1] * 40, 1), Request(1, [2] * 40, 1)
    eng.add(r0)
    eng.add(r1)
    assert eng.step() == [r0] and len(cache.held[0]) == 3  # r1 got the 24 tokens left of the budget (2 pages)
    assert eng.step() == [] and r1.preemptions == 1 and 1 not in cache.held  # r1 needs a 3rd page: none is free
    assert cache.allocator.n_free() == 2
    cache.release(0)
    while eng.has_work():
        eng.step()
    assert len(cache.held[1]) == 3
    cache.release(1)
    assert cache.allocator.n_free() == 5


def _router(argv: list[str], log: str) -> None:
    """The CLI in a forked child (torch is already imported: no second start-up), its stdout to a file."""
    sys.stdout = sys.stderr = open(log, "w", buffering=1)
    disaggregated.main(argv)


def test_disaggregated_workers_match_colocated_engine_and_die_with_the_router(tmp_path):
    """Prefill and decode workers in processes of their own (the pool shared): the same greedy tokens as one engine;
    then the router is killed (SIGKILL, no clean-up of its own) and none of its children may outlive it."""
    model = build_model("tiny", "cpu", torch.float32)
    size = disaggregated.SIZES["tiny"]
    w = Workload(rate=float("inf"), n_requests=6, prompt_mean=size["prompt_mean"], output_mean=size["output_mean"],
                 max_prompt=size["max_prompt"], max_output=size["max_output"])
    ref = Engine(model, new_paged_cache(model, 256), max_batch=8, token_budget=128).run(poisson_requests(w, 256))
    # the second point's first arrival is ~100 s away: the workers are alive and idle when the router dies
    outputs, log = tmp_path / "outputs.json", tmp_path / "router.log"
    argv = ["--size", "tiny", "--device", "cpu", "--modes", "disaggregated", "--rates", "inf,0.01", "--requests", "6",
            "--verify-kv", "--outputs", str(outputs)]
    router = multiprocessing.get_context("fork").Process(target=_router, args=(argv, str(log)))
    router.start()
    try:
        t_end = time.monotonic() + 90
        while not (log.exists() and "rate inf" in log.read_text()) and time.monotonic() < t_end and router.is_alive():
            time.sleep(0.1)
        text = log.read_text()
        assert "finished 6/6" in text and "verified 6/6" in text, text
        assert json.loads(outputs.read_text())["disaggregated"] == {str(r.rid): r.output for r in ref}
        workers = next(line for line in text.splitlines() if line.startswith("workers"))
        pids = [int(x.split("=")[1]) for x in workers.split(":")[1].split()]
        children = _children(router.pid)
        assert len(pids) == 2 and set(pids) <= set(children) and all(_running(p) for p in pids)
        os.kill(router.pid, signal.SIGKILL)
        router.join(10)
        t_end = time.monotonic() + 15
        while any(_running(p) for p in children) and time.monotonic() < t_end:
            time.sleep(0.1)
        assert not any(_running(p) for p in children)
    finally:
        if router.is_alive():
            router.kill()
            router.join()


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_disaggregated_bad_input_exits_2(capsys):
    assert disaggregated.main(["--size", "tiny", "--device", "cpu", "--modes", "split"]) == 2
    assert disaggregated.main(["--size", "tiny", "--device", "cpu", "--rates", "0"]) == 2
    if not torch.cuda.is_available():
        assert disaggregated.main(["--size", "tiny", "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
