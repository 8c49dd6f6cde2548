"""Chapter 16's other examples at tiny size on the CPU: the engine's step timer, FP8 linear layers and the FP8
engine, the static-buffer decode step (eager), the MoE variants and their profile. Checked: what they compute
and what they write, never their speed. (The MoE and FP8-linear harness examples also run in test_examples.py.)"""
import json

import pytest
import torch

from ch16 import decode_graphs, fp8_inference, fp8_linear, moe_layer, moe_profile
from inference import step_time


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_step_time_writes_rows(tmp_path):
    out = tmp_path / "s.json"
    assert step_time.main(["--config", "tiny", "--batch", "1,3", "--context", "16", "--steps", "5", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["batch"] for r in rows] == [1, 3]
    assert all(r["decode_ms"] > 0 and r["prefill_ms"] > 0 and r["forward_aten_ops_per_decode_step"] > 10 for r in rows)
    assert step_time.main(["--config", "tiny", "--batch", "0"]) == 2
    assert step_time.main(["--config", "tiny", "--context", "300"]) == 2


def _fp8_runs():
    return fp8_inference.fp8_supported(torch.device("cpu")) is None


@pytest.mark.skipif(not _fp8_runs(), reason="torch._scaled_mm with e4m3 does not run on this CPU build")
def test_fp8_linear_is_close_to_bf16():
    inp = fp8_linear.setup("tiny", torch.device("cpu"), 0)
    ref = torch.nn.functional.linear(inp["x"], inp["w"]).float()
    for w8, scale, rowwise in ((inp["w8_rows"], inp["scale_rows"], True), (inp["w8_tensor"], inp["scale_tensor"], False)):
        out = fp8_linear.fp8_matmul(inp["x"], w8, scale, rowwise).float()
        assert out.dtype == torch.float32 and ((out - ref).norm() / ref.norm()) < 0.06  # e4m3: ~3-4% here
    layer = torch.nn.Linear(64, 32, bias=False).to(torch.bfloat16)
    x = torch.randn(2, 5, 64).to(torch.bfloat16)
    y = fp8_linear.Fp8Linear(layer)(x)
    assert y.shape == (2, 5, 32) and ((y.float() - layer(x).float()).norm() / layer(x).float().norm()) < 0.06


@pytest.mark.skipif(not _fp8_runs(), reason="torch._scaled_mm with e4m3 does not run on this CPU build")
def test_fp8_engine_runs_and_measures_its_error(tmp_path):
    out = tmp_path / "f.json"
    assert fp8_inference.main(["--size", "tiny", "--device", "cpu", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["status"] == "ok" and r["accuracy"]["top1_agreement"] >= 0.9 and r["accuracy"]["rel_l2_err"] < 0.1
    assert [s["batch"] for s in r["speedup"]] == [1, 4] and r["goals"][0]["target"] == 1.3
    assert all(row["graphs_decode_ms"] > 0 for row in r["series"]["fp8"])


def test_static_decode_step_equals_full_forward(tmp_path):
    out = tmp_path / "d.json"
    assert decode_graphs.main(["--size", "tiny", "--device", "cpu", "--variants", "eager", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [row["batch"] for row in rows] == [1, 4]
    assert all(r["max_abs_logit_err_vs_full_forward"] < 1e-4 and r["greedy_token_agreement_vs_eager"] == 1.0 for r in rows)
    assert decode_graphs.main(["--size", "tiny", "--device", "cpu", "--variants", "cuda_graph"]) == 2


def test_moe_variants_agree():
    inp = moe_layer.setup("tiny", torch.device("cpu"), 3)
    ref = moe_layer.expert_loop(inp)
    torch.testing.assert_close(moe_layer.padded_bmm(inp), ref, rtol=1.6e-2, atol=1e-2)
    try:
        grouped = moe_layer.grouped_mm(inp)
    except (RuntimeError, NotImplementedError, TypeError):  # torch._grouped_mm has no CPU kernel in this build
        return
    torch.testing.assert_close(grouped, ref, rtol=1.6e-2, atol=1e-2)


def test_moe_profile_reports_syncs(tmp_path):
    out = tmp_path / "m.json"
    assert moe_profile.main(["--size", "tiny", "--device", "cpu", "--calls", "1", "--json", str(out)]) == 0
    rows = {r["variant"]: r for r in json.loads(out.read_text())["variants"]}
    assert rows["expert_loop"]["host_syncs_per_call"] == moe_layer.SHAPES["tiny"][3]  # one nonzero per expert
    assert rows["padded_bmm"]["host_syncs_per_call"] == 1    # the padded block height
    assert moe_profile.main(["--calls", "0", "--device", "cpu"]) == 2
