"""Chapter 13 on the CPU at tiny size: the trace summary, the training-step variants' equality, AdamW variants,
compile bookkeeping, activation checkpointing, the memory timeline, and FP8's scaling math."""
import math

import pytest
import torch

from ch13 import activation_checkpointing as ac
from ch13 import compile_train_step as cts
from ch13 import fp8_linear as f8
from ch13 import memory_snapshot as ms
from ch13 import profile_train_step as pts
from ch13 import trace_summary as ts
from ch13.train_common import PHASES, make_model

CPU = torch.device("cpu")


def _events():
    """Two profiled steps of 100 us; kernels busy 0-30 and 20-50 (overlapping) then 60-70 in step 1, 100-140 in step 2."""
    steps = [{"ph": "X", "name": f"ProfilerStep#{i}", "cat": "user_annotation", "ts": 100 * i, "dur": 100}
             for i in range(2)]
    phases = [{"ph": "X", "name": n, "cat": c, "ts": 0, "dur": d} for n, c, d in
              [("forward", "user_annotation", 40), ("forward", "gpu_user_annotation", 30), ("optimizer", "user_annotation", 10)]]
    kernels = [{"ph": "X", "name": n, "cat": "kernel", "ts": s, "dur": d} for n, s, d in
               [("gemm", 0, 30), ("gemm", 20, 30), ("adam", 60, 10), ("gemm", 100, 40)]]
    gpu_steps = [dict(e, cat="gpu_user_annotation") for e in steps]   # the GPU-side copies: not more steps
    return steps + gpu_steps + phases + kernels + [{"ph": "i", "name": "marker"}]


def test_trace_summary_phases_kernels_and_idle():
    s = ts.summarize([e for e in _events() if e["ph"] == "X"], ("forward", "optimizer", "backward"), top=5)
    assert s["steps"] == 2 and s["step_ms"] == pytest.approx(0.1)
    assert s["phases"]["forward"] == {"host_ms": 0.02, "gpu_ms": 0.015}
    assert s["phases"]["backward"] == {"host_ms": None, "gpu_ms": None}
    assert [k["kernel"] for k in s["top_kernels"]] == ["gemm", "adam"]
    assert s["top_kernels"][0]["share"] == pytest.approx(100 / 110)
    # busy: [0, 50) + [60, 70) + [100, 140) = 100 us of a 200 us span
    assert s["gpu_idle_fraction"] == pytest.approx(0.5)
    assert "GPU idle 50.0%" in ts.text(s)
    # the host ran ahead: a kernel ending after the last step extends the span (200 -> 250 us, 150 busy)
    late = ts.summarize([e for e in _events() if e["ph"] == "X"] +
                        [{"ph": "X", "name": "gemm", "cat": "kernel", "ts": 200, "dur": 50}])
    assert late["step_ms"] == pytest.approx(0.125) and late["gpu_idle_fraction"] == pytest.approx(1 - 150 / 250)


def test_training_step_variants_agree_and_profile_has_phases():
    checks = pts.verify("tiny", CPU, steps=1)
    assert all(c["verified"] for c in checks.values()), checks
    row = pts.profile_variant("fused_adamw", "tiny", CPU, steps=1, trace_path=None, runs=1)
    assert row["step_ms"] > 0
    assert all(row["profile"]["phases"][p]["host_ms"] is not None for p in PHASES)


def test_adamw_variants_give_the_for_loop_update():
    from ch13 import adamw_step

    outs = {}
    for name, flags in {"for_loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}.items():
        outs[name] = adamw_step.adamw(adamw_step.setup("tiny", CPU, seed=3), **flags)
    before = adamw_step.setup("tiny", CPU, seed=3)["params"]
    assert any(not torch.equal(a, b) for a, b in zip(outs["for_loop"], before, strict=True))  # it did update
    for name in ("foreach", "fused"):
        for a, b in zip(outs[name], outs["for_loop"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_compile_warmup_bookkeeping_and_a_cheap_compile():
    assert cts.warmup_steps([5.0, 2.0, 1.05, 1.0, 1.0], steady=1.0) == 2
    assert cts.warmup_steps([1.0, 1.0], steady=1.0) == 0
    import torch._dynamo

    try:  # backend "eager": Dynamo's capture without Inductor (CPU Inductor would take minutes in CI)
        r = cts.child("default", "tiny", 3, "eager")
    finally:
        torch._dynamo.reset()
    assert r["unique_graphs"] >= 1 and len(r["losses"]) == 3 and all(math.isfinite(v) for v in r["losses"])
    assert cts.main(["--modes", "bogus"]) == 2


def test_activation_checkpointing_same_loss_and_gradients():
    none = ac.measure("none", "tiny", CPU, steps=1)
    ckpt = ac.measure("per_block", "tiny", CPU, steps=1)
    assert ckpt["loss"] == pytest.approx(none["loss"], rel=1e-5)
    assert ckpt["grad_norm"] == pytest.approx(none["grad_norm"], rel=1e-5)
    model = ac.with_checkpointing(make_model("tiny", CPU))
    assert all(isinstance(b, ac.Checkpointed) for b in model.layers)


def test_memory_timeline_and_picture(tmp_path):
    gib = ms.GIB
    trace = [{"action": "alloc", "size": gib}, {"action": "alloc", "size": 2 * gib},
             {"action": "free_requested", "size": gib}, {"action": "free_completed", "size": gib},
             {"action": "segment_alloc", "size": 4 * gib}, {"action": "alloc", "size": gib // 2}]
    curve = ms.timeline(trace, start_bytes=gib)
    assert [c / gib for c in curve] == [2, 4, 3, 3, 3, 3.5]
    marks = {"data": 1, "forward": 2, "backward": 4, "optimizer": 6}
    figs = ms.phase_figures(curve, marks, gib)
    assert figs["forward"] == {"events": 1, "peak_gib": 4.0, "growth_gib": 2.0}
    assert figs["backward"]["growth_gib"] == -1.0
    ms.draw(curve, marks, tmp_path / "t.png", "test")
    assert (tmp_path / "t.png").stat().st_size > 1000
    if not torch.cuda.is_available():
        assert ms.main(["--out", str(tmp_path)]) == 2


def test_fp8_quantize_scale_and_round_trip():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(32, 64, generator=g)
    t[3, 5] = 1e5                                                # an outlier in row 3
    q, s = f8.quantize(t, f8.E4M3)
    assert q.dtype == f8.E4M3 and s.numel() == 1
    assert float(s) == pytest.approx(1e5 / 448.0)                # amax lands on e4m3's largest finite value
    assert float(q.float().abs().max()) == 448.0
    qr, sr = f8.quantize(t, f8.E4M3, dim=1)
    assert sr.shape == (32, 1) and float(sr[0]) == pytest.approx(float(t[0].abs().max()) / 448.0)
    # e4m3 keeps 3 mantissa bits: relative error <= 2^-4 for normal values, plus the subnormal step near 0
    err = (f8.dequantize(qr, sr) - t).abs()
    assert bool((err <= t.abs() * 2 ** -4 + sr * 2 ** -9).all())
    # row-wise: the outlier coarsens only its own row; tensor-wise: every row
    row_err = lambda deq: float(((deq - t)[0].norm() / t[0].norm()))  # noqa: E731
    assert row_err(f8.dequantize(qr, sr)) < 0.05 < row_err(f8.dequantize(q, s))
    q5, s5 = f8.quantize(t, f8.E5M2)
    assert float(s5) == pytest.approx(1e5 / 57344.0)
    z, zs = f8.quantize(torch.zeros(4, 16), f8.E4M3, dim=1)       # all-zero rows: finite scale, zero values
    assert bool(torch.isfinite(zs).all()) and float(z.float().abs().max()) == 0.0


@pytest.mark.parametrize("recipe", sorted(f8.RECIPES))
def test_fp8_linear_forward_and_backward_close_to_fp32(recipe):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 32, generator=g, requires_grad=True)
    dy = torch.randn(64, 48, generator=g)
    ref = torch.nn.Linear(32, 48, bias=False)
    fp8 = torch.nn.Linear(32, 48, bias=False)
    fp8.weight.data.copy_(ref.weight.data)
    assert f8.convert_to_float8(fp8, recipe, skip=()) == 1 and isinstance(fp8, f8.Float8Linear)
    outs = []
    for layer in (ref, fp8):
        x.grad = None
        y = layer(x)
        y.backward(dy)
        outs.append((y.detach(), x.grad.clone(), layer.weight.grad.clone()))
    for a, b in zip(outs[0], outs[1], strict=True):
        assert float((b - a).norm() / a.norm()) < 0.08   # FP8's few mantissa bits: a few percent, not more


def test_convert_to_float8_swaps_block_linears_not_the_head():
    model = make_model("tiny", CPU)
    assert f8.convert_to_float8(model, "rowwise") == 2 * 7         # wq wk wv wo w1 w2 w3 per block
    assert type(model.output) is torch.nn.Linear
    with pytest.raises(ValueError):
        f8.convert_to_float8(model, "blockwise")


def test_fp8_training_data_is_learnable_and_runs_skip_without_fp8():
    from ch13 import fp8_training as ft

    g = torch.Generator().manual_seed(0)
    tokens, targets = ft.structured_batch(4, 32, 256, g, CPU, noise=0.0)
    step = (tokens[:, 1] - tokens[:, 0]) % 256
    assert bool(((targets - tokens) % 256 == step[:, None]).all())   # noiseless: next = current + stride
    assert f8.has_fp8_mm(CPU) is False


def test_gpu_check_script_names_real_modules_and_refuses_a_bad_part(tmp_path):
    import os
    import re
    import subprocess

    from harness.device import REPO_ROOT

    script = REPO_ROOT / "ch13" / "gpu_check.sh"
    assert script.stat().st_mode & 0o111, "gpu_check.sh must be executable"
    text = script.read_text()
    for chapter, module in re.findall(r"-m (ch1[34])\.(\w+)", text):
        assert (REPO_ROOT / chapter / f"{module}.py").exists(), f"{chapter}.{module}"
    examples = [e for line in re.findall(r"harness \w+ \d+ ((?:ch1[34]/\w+ ?)+)", text) for e in line.split()]
    assert len(examples) == 3
    for example in examples:
        assert (REPO_ROOT / f"{example}.py").exists(), example
    proc = subprocess.run(["bash", str(script), "--part", "bogus"], env={**os.environ, "OUT": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--part" in proc.stderr


def test_fp8_training_runs_roles_and_skips_on_cpu(monkeypatch):
    import sys

    from ch13 import fp8_training as ft

    assert ft.RUNS["bf16"] == "baseline" and ft.RUNS["torchao_rowwise"] == "reference"
    assert ft.skip_reason("bf16", CPU) is None
    for run in ft.RUNS:
        if run != "bf16":
            assert "sm_89" in ft.skip_reason(run, CPU)
    monkeypatch.setitem(sys.modules, "torchao", None)       # as where torchao is not installed
    assert "torchao not importable" in ft.torchao_missing()
    model = make_model("tiny", CPU)
    assert ft.convert(model, "bf16") == 0 and ft.convert(model, "fp8_rowwise") == 2 * 7
    with pytest.raises(SystemExit) as exc:
        ft.main(["--size", "tiny", "--runs", "fp8_rowwise"])    # bf16 is what the others are compared with
    assert exc.value.code == 2



def test_torchao_conversion_takes_the_same_layers_as_ours():
    pytest.importorskip("torchao.float8", reason="torchao not installed")
    from torchao.float8.float8_linear import Float8Linear as AoFloat8Linear

    from ch13 import fp8_training as ft

    for recipe in ("tensorwise", "rowwise"):
        model = make_model("tiny", CPU)
        assert ft.convert(model, f"torchao_{recipe}") == 2 * 7
        assert not isinstance(model.output, AoFloat8Linear)    # the LM head stays in bf16, as in ours

def test_fp8_training_records_a_failed_run_and_goes_on(tmp_path, monkeypatch):
    import json

    from ch13 import fp8_training as ft

    def convert(model, run):
        if run != "bf16":
            raise RuntimeError("no FP8 kernel for this shape")
        return 0

    monkeypatch.setattr(ft, "skip_reason", lambda run, device: None)
    monkeypatch.setattr(ft, "convert", convert)
    assert ft.main(["--size", "tiny", "--steps", "2", "--runs", "bf16,torchao_rowwise", "--out", str(tmp_path)]) == 1
    rows = json.loads((tmp_path / "fp8_training.json").read_text())["rows"]
    assert [r["run"] for r in rows] == ["bf16", "torchao_rowwise"] and rows[0]["tracks_bf16"]
    assert rows[1]["failed"].startswith("RuntimeError: no FP8 kernel")


def _trace_dir(tmp_path):
    import gzip
    import json

    folder = tmp_path / "traces"
    folder.mkdir()
    with gzip.open(folder / "baseline.json.gz", "wt") as f:
        json.dump({"traceEvents": _events()}, f)
    return folder


def test_hta_report_without_hta_says_so_and_keeps_our_summary(tmp_path, monkeypatch):
    import json
    import sys

    from ch13 import hta_report as hr

    folder = _trace_dir(tmp_path)
    events = hr.with_rank(folder / "baseline.json.gz", tmp_path / "copy" / "rank0.json")
    assert json.loads((tmp_path / "copy" / "rank0.json").read_text())["distributedInfo"]["rank"] == 0
    assert len(events) == len([e for e in _events() if e.get("ph") == "X"])
    monkeypatch.setitem(sys.modules, "hta", None)            # as where HTA is not installed
    monkeypatch.setitem(sys.modules, "hta.trace_analysis", None)
    assert hr.hta_missing()
    assert hr.main([str(folder), "--out", str(tmp_path / "hta")]) == 0
    result = json.loads((tmp_path / "hta" / "hta_report.json").read_text())
    assert result["hta"].startswith("not installed")
    assert result["variants"]["baseline"]["ours"]["gpu_idle_fraction"] == pytest.approx(0.5)
    assert "hta" not in result["variants"]["baseline"] and result["picture"].startswith("skipped")
    assert result["rows"][0]["ours_gpu_idle_pct"] == pytest.approx(50.0) and "git_sha" in result["provenance"]
    (tmp_path / "p.json").write_text(json.dumps({"provenance": {"git_sha": "feed123"}}))
    assert hr.main([str(folder), "--out", str(tmp_path / "hta2"), "--profile-json", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "hta2" / "hta_report.json").read_text())["provenance"]["git_sha"] == "feed123"
    assert hr.idle_by_category({"analyses": {"idle": {"idle_time": [
        {"idle_category": "host_wait", "idle_time": 1500.0}, {"idle_category": "kernel_wait", "idle_time": 500.0}]}}}) \
        == {"host_wait": 1.5, "kernel_wait": 0.5, "other": 0.0}
    assert hr.main([str(tmp_path / "nothing")]) == 2


def test_fp8_hta_gpu_script_names_real_modules():
    import re
    import subprocess

    from harness.device import REPO_ROOT

    script = REPO_ROOT / "ch13" / "gpu_check_fp8_hta.sh"
    assert script.stat().st_mode & 0o111, "gpu_check_fp8_hta.sh must be executable"
    modules = re.findall(r"-m ch13\.(\w+)", script.read_text())
    assert {"profile_train_step", "hta_report", "fp8_training"} <= set(modules)
    for module in modules:
        assert (REPO_ROOT / "ch13" / f"{module}.py").exists(), module
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30).returncode == 0
    proc = subprocess.run(["bash", str(script), "--part", "bogus"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "--part" in proc.stderr
