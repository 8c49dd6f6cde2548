"""Chapter 4 strategies: DDP, FSDP2, tensor parallelism and a two-stage pipeline train the tiny decoder on two
gloo ranks and reproduce the unsharded run's losses and gradient norm; the memory model's activation count is
what autograd really saves; the overlap figure is read correctly from a trace; a run past its deadline leaves
no process behind; bad input exits 2. Nothing here depends on how fast the machine is."""
from __future__ import annotations

import json
import time

import pytest
import torch
import torch.nn.functional as F

from ch4 import comm_overlap
from ch4 import memory_model as mm
from ch4 import parallel_strategies as ps
from inference.model import CONFIGS, Decoder


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    trace_dir = tmp_path_factory.mktemp("traces")
    return ps.run(2, "gloo", "cpu", "tiny", strategies=("ddp", "fsdp", "tp", "pp"), timeout=150, trace_dir=str(trace_dir))


def test_every_strategy_reproduces_the_unsharded_run(report):
    assert report["error"] is None and report["verified"], report
    assert set(report["rows"]) == {"single", "ddp", "fsdp", "tp", "pp"}
    for name, row in report["rows"].items():
        assert len(row["losses"]) == report["warmup"] + report["steps"]
        if name == "single":
            continue
        check = row["matches_reference"]
        assert check["ok"] and check["precision"] == "fp32", (name, check)
        assert check["first_step_rel_err"] <= 1e-4 and check["grad_norm_rel_err"] <= 1e-3, (name, check)
        assert row["scaling_efficiency"] is not None and row["tokens_per_s"] > 0
    assert report["rows"]["pp"]["microbatches"] == 4


def test_ddp_and_fsdp_traces_are_written(report):
    for name in ("ddp", "fsdp"):
        ov = report["rows"][name]["overlap"]
        assert json.loads(open(ov["trace"]).read())["traceEvents"]
        assert ov["overlap_fraction"] is None and "gloo" in ov["reason"]   # no NCCL kernels on the CPU


def test_memory_model_counts_what_autograd_saves():
    cfg, batch, seq = CONFIGS["tiny"], 2, 16
    model = Decoder(cfg)
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in own:
            saved[s.data_ptr()] = s.nbytes()
        return t

    tok = torch.randint(cfg.vocab, (batch, seq + 1))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.cross_entropy(model(tok[:, :-1]).flatten(0, 1), tok[:, 1:].flatten())
    predicted = mm.per_rank(cfg, "single", 1, batch, seq)[0]["activations"]
    assert abs(predicted - sum(saved.values())) / sum(saved.values()) < 0.02


def test_memory_model_divides_what_each_strategy_shards():
    cfg, world = CONFIGS["small"], 4
    single = mm.per_rank(cfg, "single", 1, 2, 256)[0]
    fsdp = mm.per_rank(cfg, "fsdp", world, 2, 256)
    assert len(fsdp) == world and fsdp[0]["optimizer"] == pytest.approx(single["optimizer"] / world)
    assert fsdp[0]["activations"] == single["activations"]
    pp = mm.per_rank(cfg, "pp", world, 2, 256)
    assert sum(r["params"] for r in pp) == pytest.approx(single["params"])
    tp = mm.per_rank(cfg, "tp", world, 2, 256)[0]
    assert single["params"] / world < tp["params"] < single["params"]       # embeddings stay replicated
    assert mm.stage_layers(12, 5) == [(0, 3), (3, 6), (6, 8), (8, 10), (10, 12)]
    with pytest.raises(ValueError):
        mm.per_rank(cfg, "zero", world, 2, 256)
    # A hybrid with one degree 1 is the plain strategy; with both, each divides what it splits.
    assert mm.per_stage(cfg, world, 2, 256, fsdp=True)[0] == fsdp[0]
    hybrid = mm.per_stage(cfg, 8, 2, 256, tp=2, pp=2, fsdp=True)
    assert len(hybrid) == 2 and hybrid[0]["params"] < tp["params"]
    names = [r["strategy"] for r in mm.table(cfg, 4, 1, 256, "mixed")]
    assert names == ["single", "ddp", "fsdp", "tp", "pp", "pp2 x fsdp2", "tp2 x fsdp2", "tp2 x pp2"]


def test_strategies_that_cannot_split_the_model_say_why():
    cfg = CONFIGS["tiny"]   # 4 query heads, 2 key/value heads, 2 blocks
    assert ps.skip_reason("tp", cfg, 2, 2, "cpu") is None and ps.skip_reason("pp", cfg, 2, 2, "cpu") is None
    assert "divisible by 3" in ps.skip_reason("tp", cfg, 3, 2, "cpu")
    assert "need 3 blocks" in ps.skip_reason("pp", cfg, 3, 2, "cpu")


def test_overlap_is_the_communication_time_under_compute():
    def kernel(name, ts, dur, stream):
        return {"ph": "X", "cat": "kernel", "name": name, "ts": ts, "dur": dur, "args": {"device": 0, "stream": stream}}

    trace = {"traceEvents": [kernel("gemm", 0, 10, 7), kernel("gemm", 20, 10, 7),
                             kernel("ncclDevKernel_AllReduce_Sum_f32_RING_LL", 5, 20, 13)]}
    from ch11.timeline import gpu_ops
    ops = gpu_ops(trace)
    ov = comm_overlap.overlap(ops)
    assert ov["comm_us"] == 20 and ov["exposed_us"] == 10 and ov["overlap_fraction"] == 0.5


def test_a_run_past_its_deadline_is_killed_not_left_behind():
    psutil = pytest.importorskip("psutil")
    t0 = time.monotonic()
    r = ps.run(2, "gloo", "cpu", "tiny", strategies=("ddp",), timeout=0.5)
    assert r["error"].startswith("TimeoutError") and not r["verified"]
    assert time.monotonic() - t0 < 60
    time.sleep(0.2)
    left = [p for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != "zombie"]
    # multiprocessing's resource tracker serves this whole process (spawned once, on first use): not a rank
    assert [p for p in left if "resource_tracker" not in " ".join(p.cmdline())] == []


def test_bad_arguments_exit_2(capsys):
    for bad in (["--world", "0"], ["--strategies", "zero3"], ["--backend", "nccl"], ["--size", "huge"]):
        with pytest.raises(SystemExit) as info:
            ps.main(bad)
        assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        mm.main(["--world", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith(("parallel_strategies:", "memory_model:")) for line in err), err


@pytest.mark.multigpu
def test_every_strategy_reproduces_the_unsharded_run_over_nccl():
    r = ps.run(2, "nccl", "cuda", "tiny", timeout=150)
    assert r["error"] is None and r["verified"], {k: v.get("matches_reference") for k, v in r["rows"].items()}
    assert all(p > 0 for p in r["rows"]["ddp"]["peak_bytes_per_rank"])
