"""Peaks: datasheet lookup, fraction-of-peak annotation, the roofline, and benchmark_peak.py end to end.

The peaks files written here are fakes with round numbers, made to check arithmetic, never results.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from harness import peaks, roofline
from harness.device import REPO_ROOT
from harness.result import ExampleResult, VariantResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, key", [
    ("NVIDIA H200", "H200"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", None),              # other memory and clocks: no row rather than a wrong one
    ("NVIDIA H200 NVL", None),
    ("NVIDIA GH200 480GB", None),           # not an H200
    ("NVIDIA B200", "B200"),
    ("NVIDIA GB200", None),
    ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100-SXM4-40GB", None),
    ("NVIDIA A100 80GB PCIe", None),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA L40", None),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("NVIDIA GeForce RTX 4090 D", None),
    ("cpu", None),
])
def test_datasheet_key(name, key):
    assert peaks.datasheet_key(name) == key


def test_datasheet_rows_are_complete_and_dense():
    assert set(peaks.DATASHEET) == {"B200", "H200", "H100 SXM", "H100 PCIe", "A100", "L40S", "RTX 4090"}
    for key, row in peaks.DATASHEET.items():
        assert set(row) == {"memory_gbps", "host_link_gbps", "gpu_link_gbps", *peaks.DTYPES}, key
        assert row["fp16"] == row["bf16"], key
        assert row["fp8"] is None or row["fp8"] == pytest.approx(2 * row["bf16"], rel=0.02), key
    # The H200 is an H100 SXM with more and faster memory: same compute.
    assert {d: peaks.DATASHEET["H200"][d] for d in peaks.DTYPES} == {d: peaks.DATASHEET["H100 SXM"][d]
                                                                      for d in peaks.DTYPES}


def _fake_peaks(tmp_path, name="NVIDIA H200", **figures):
    doc = {"schema": 1, "provenance": {"device": {"name": name}},
           "figures": {k: {"value": v, "unit": "x", "what": k, "datasheet": None} for k, v in figures.items()},
           "skipped": {}}
    path = peaks.peaks_path(name, tmp_path)
    path.write_text(json.dumps(doc))
    return path


def _result(flops_dtype="bf16", bandwidth_ceiling="memory") -> ExampleResult:
    """Figures without times: annotate gives fractions; the plausibility rule judges timed variants only."""
    return ExampleResult(flops_dtype=flops_dtype, bandwidth_ceiling=bandwidth_ceiling, variants=[
        VariantResult(name="baseline", role="baseline", gbps=1000.0, tflops=100.0),
        VariantResult(name="fast", role="optimized", gbps=2000.0),
        VariantResult(name="other", role="optimized"),
    ])


def test_annotate_with_measured_peaks(tmp_path):
    path = _fake_peaks(tmp_path, memory_copy_gbps=4000.0, matmul_bf16_tflops=800.0)
    res = _result()
    peaks.annotate(res, {"name": "NVIDIA H200"}, peaks_dir=tmp_path)
    base, fast, other = res.variants
    assert base.fraction_of_peak_bandwidth == pytest.approx(0.25)
    assert base.fraction_of_peak_flops == pytest.approx(0.125)
    assert fast.fraction_of_peak_bandwidth == pytest.approx(0.5)
    assert fast.fraction_of_peak_flops is None and other.fraction_of_peak_bandwidth is None
    assert res.peak_source == f"measured {path}"
    assert res.peaks_used == {"gbps": 4000.0, "bandwidth_ceiling": "memory", "tflops": 800.0, "flops_dtype": "bf16"}


def test_annotate_against_another_link(tmp_path):
    _fake_peaks(tmp_path, memory_copy_gbps=4000.0, h2d_pinned_gbps=50.0, p2p_0to1_gbps=300.0, p2p_0to2_gbps=400.0)
    res = _result(bandwidth_ceiling="h2d")
    peaks.annotate(res, {"name": "NVIDIA H200"}, peaks_dir=tmp_path)
    assert res.variants[0].fraction_of_peak_bandwidth == pytest.approx(1000.0 / 50.0)
    assert peaks.ceilings({"name": "NVIDIA H200"}, tmp_path).bandwidth["p2p"] == 400.0
    # no measured link figure: the datasheet's, labelled
    res = _result(bandwidth_ceiling="d2h")
    peaks.annotate(res, {"name": "NVIDIA H200"}, peaks_dir=tmp_path)
    assert res.peaks_used["gbps"] == peaks.DATASHEET["H200"]["host_link_gbps"]
    assert res.peak_source == "datasheet H200 (not measured)"   # bf16 is from the datasheet too


def test_annotate_measured_file_lacking_a_dtype_says_which_came_from_the_datasheet(tmp_path):
    _fake_peaks(tmp_path, memory_copy_gbps=4000.0, matmul_bf16_tflops=800.0)
    res = _result("fp8")
    peaks.annotate(res, {"name": "NVIDIA H200"}, peaks_dir=tmp_path)
    assert res.variants[0].fraction_of_peak_flops == pytest.approx(100.0 / peaks.DATASHEET["H200"]["fp8"])
    assert res.peak_source.startswith("memory measured ")
    assert res.peak_source.endswith("; fp8 datasheet H200 (not measured)")


def test_annotate_without_peaks_file_uses_the_datasheet_and_says_so(tmp_path):
    res = _result()
    peaks.annotate(res, {"name": "NVIDIA H100 PCIe"}, peaks_dir=tmp_path)
    sheet = peaks.DATASHEET["H100 PCIe"]
    assert res.peak_source == "datasheet H100 PCIe (not measured)"
    assert res.variants[0].fraction_of_peak_bandwidth == pytest.approx(1000.0 / sheet["memory_gbps"])
    assert res.variants[0].fraction_of_peak_flops == pytest.approx(100.0 / sheet["bf16"])


def test_annotate_unknown_device_adds_no_fractions(tmp_path):
    for name in ("cpu", "NVIDIA H100 NVL"):
        res = _result()
        peaks.annotate(res, {"name": name}, peaks_dir=tmp_path)
        assert res.peak_source.startswith("none: ")
        assert all(v.fraction_of_peak_bandwidth is None and v.fraction_of_peak_flops is None for v in res.variants)


def test_annotate_skipped_result_is_harmless(tmp_path):
    res = ExampleResult(status="failed")
    peaks.annotate(res, {"name": "NVIDIA H200"}, peaks_dir=tmp_path)
    assert res.peaks_used["tflops"] is None and res.peaks_used["gbps"] == peaks.DATASHEET["H200"]["memory_gbps"]


def test_comparison_table_puts_each_figure_beside_every_datasheet():
    doc = {"figures": {"memory_copy_gbps": {"value": 2400.0, "unit": "GB/s", "what": "copy", "datasheet": "memory_gbps"},
                       "launch_graph_us": {"value": 1.0, "unit": "us", "what": "graph", "datasheet": None}},
           "provenance": {"device": {"name": "NVIDIA H200"}}}
    header, rows = peaks.comparison_rows(doc)
    assert header == ["figure", "measured", *peaks.DATASHEET]
    assert rows[0][header.index("H200")] == "4800 (50%)"
    assert rows[1][2:] == ["-"] * len(peaks.DATASHEET)
    md = peaks.markdown_table(doc)
    assert "| copy | 2400 GB/s | 4800 (50%) |" in md and "H200 datasheet" in md


def _fake_results(name):
    return {"run": {"device": {"name": name}}, "examples": [
        {"id": "chX/gemm", "flops_dtype": "bf16", "variants": [
            {"name": "baseline", "role": "baseline", "verified": True, "median_ms": 1.0, "gbps": 500.0, "tflops": 50.0},
            {"name": "fused", "role": "optimized", "verified": True, "median_ms": 1.0, "gbps": 1500.0, "tflops": 400.0},
            {"name": "wrong", "role": "optimized", "verified": False, "gbps": 9e9, "tflops": 9e9}]},
        {"id": "chX/copy", "flops_dtype": None, "variants": [
            {"name": "baseline", "role": "baseline", "verified": True, "median_ms": 1.0, "gbps": 900.0}]},
    ]}


def test_roofline_png_from_fake_results(tmp_path):
    _fake_peaks(tmp_path, memory_copy_gbps=4000.0, matmul_bf16_tflops=800.0, l2_copy_gbps=9000.0)
    results = _fake_results("NVIDIA H200")
    pts = roofline.points(results)
    assert [(p["variant"], p["intensity"]) for p in pts] == [("baseline", pytest.approx(100.0)),
                                                             ("fused", pytest.approx(400e12 / 1500e9))]
    out = roofline.plot(results, tmp_path / "roofline.png", peaks_dir=tmp_path)
    assert out.read_bytes()[:8] == PNG_MAGIC
    # No ceilings and no points (a CPU run): still a picture, not a crash.
    empty = roofline.plot({"run": {"device": {"name": "cpu"}}, "examples": []}, tmp_path / "e.png", tmp_path)
    assert empty.read_bytes()[:8] == PNG_MAGIC


def test_roofline_cli(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_fake_results("cpu")))
    assert roofline.main([str(tmp_path / "results.json")]) == 0
    assert (tmp_path / "roofline.png").read_bytes()[:8] == PNG_MAGIC
    assert roofline.main([str(tmp_path / "missing.json")]) == 2


def _run(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, str(REPO_ROOT / "benchmark_peak.py"), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path")
def test_benchmark_peak_quick_on_cpu(tmp_path):
    out = tmp_path / "cpu.json"
    proc = _run("--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and doc["provenance"]["device"]["name"] == "cpu"
    assert {"started_at", "git_sha", "versions"} <= set(doc["provenance"])
    figs = doc["figures"]
    for name in ("memory_read_gbps", "memory_write_gbps", "memory_copy_gbps", "matmul_fp32_tflops"):
        assert figs[name]["value"] > 0, name
    assert "read + bytes written" in figs["memory_copy_gbps"]["what"]
    assert "compile" in doc["skipped"] and "l2_copy_gbps" in doc["skipped"]
    assert "memory copy" in proc.stdout
    md = _run("--markdown", str(out))
    assert md.returncode == 0 and "| memory copy (bytes read + bytes written) |" in md.stdout


def test_benchmark_peak_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = _run("--markdown", str(tmp_path / "none.json"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    (tmp_path / "bad.json").write_text("{}")
    proc = _run("--markdown", str(tmp_path / "bad.json"))
    assert proc.returncode == 2 and "not a peaks file" in proc.stderr
    if not torch.cuda.is_available():
        proc = _run("--device", "cuda", "--quick", "--out", str(tmp_path / "x.json"))
        assert proc.returncode == 2 and not (tmp_path / "x.json").exists()


def test_triton_kernels_give_the_right_answer_interpreted():
    code = textwrap.dedent("""
        import torch
        from harness import peak_measure as pm
        for n, block in ((10037, 1024), (4096, 256)):
            src, dst = torch.rand(n), torch.empty(n)
            problem = pm.check_kernels(src, dst, torch.empty(-(-n // block)), block, 4)
            assert problem == "", problem
        blocks, block = 10, 64
        src = torch.rand(blocks * block)
        dst = torch.full_like(src, float("nan"))
        pm.l2_copy_kernel[(blocks,)](src, dst, blocks, 3, BLOCK=block)
        assert torch.equal(src, dst)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TRITON_INTERPRET": "1"})
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


@pytest.mark.gpu
def test_benchmark_peak_quick_on_gpu(tmp_path):
    out = tmp_path / "gpu.json"
    proc = _run("--quick", "--out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    for name in ("memory_copy_gbps", "l2_copy_gbps", "matmul_bf16_tflops", "matmul_bf16_8192_tflops",
                 "launch_eager_us", "launch_graph_us", "h2d_pinned_gbps", "d2h_pageable_gbps"):
        assert doc["figures"][name]["value"] > 0, name
    assert not any(n.startswith("triton") for n in doc["notes"]), doc["notes"]   # kernels verified on the GPU


def _timed(name, ms, gbps=None, tflops=None):
    return VariantResult(name=name, role="optimized", verified=True, median_ms=ms, gbps=gbps, tflops=tflops)


def test_figures_the_machine_cannot_reach_fail_as_implausible(tmp_path):
    _fake_peaks(tmp_path, memory_copy_gbps=4000.0, memory_read_gbps=4300.0, matmul_bf16_tflops=700.0,
                matmul_bf16_burst_tflops=790.0, l2_copy_gbps=9000.0)
    dev = {"name": "NVIDIA H200", "l2_bytes": 60 << 20}
    res = ExampleResult(flops_dtype="bf16", variants=[
        _timed("read_fast", 1.0, gbps=4400.0),            # within 1.05 x the best measured (read) figure
        _timed("too_fast", 1.0, gbps=5300.0),             # over the datasheet's 4.8 TB/s, 5.3 GB a call: no L2 holds that
        _timed("burst", 1.0, tflops=800.0),               # a burst above the sustained figure is real
        _timed("absurd", 1.0, tflops=2000.0),             # above the datasheet's dense bf16 (989)
        _timed("in_l2", 0.001, gbps=8000.0),              # 8 MB a call: held against the L2 figure
    ])
    peaks.annotate(res, dev, peaks_dir=tmp_path)
    failed = {v.name: v.reason for v in res.variants if v.status == "failed"}
    assert set(failed) == {"too_fast", "absurd"}, failed
    assert all(r.startswith("implausible") for r in failed.values())
    res.settle()
    assert res.status == "failed" and "too_fast not verified: implausible" in res.reason


def test_a_cpu_thread_cannot_do_hundreds_of_tflops(tmp_path):
    res = ExampleResult(flops_dtype="fp32", environment={"cpu": {"threads": 1}},
                        variants=[_timed("cheat", 1e-6, tflops=625.0), _timed("honest", 1.0, tflops=0.05)])
    peaks.annotate(res, {"name": "cpu"}, peaks_dir=tmp_path)
    assert res.variant("cheat").status == "failed" and res.variant("honest").status == "ok"
