"""The profiling harness on the CPU: torch.profiler end to end, tool availability, dry runs, the parsers.

Fixtures named synthetic_* are hand-written to test format handling only. gpu_trace/ and gpu_ncu_raw.csv
are real output captured on the GPU machine; tests that need them skip while they are absent.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.device import REPO_ROOT
from harness.example import range_name
from harness.profiling import Job, Profiling, Settings, Tool, _load_tool_module, check_tools, summarize_torch_trace

FIXTURES = Path(__file__).parent / "fixtures" / "profiling"
GPU_TRACE_DIR = FIXTURES / "gpu_trace"
GPU_NCU_CSV = FIXTURES / "gpu_ncu_raw.csv"
ncu_tool = _load_tool_module("extract_ncu_metrics")
nsys_tool = _load_tool_module("extract_nsys_summary")
hta_tool = _load_tool_module("hta_summary")
compare_tool = _load_tool_module("compare_runs")


def _load_cli():
    """scripts/ is not a package: load the CLI by its path for the in-process tests."""
    spec = importlib.util.spec_from_file_location("profile_harness_cli", REPO_ROOT / "scripts" / "profile_harness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


main = _load_cli().main


def _hta_importable() -> bool:
    try:
        import hta.trace_analysis  # noqa: F401
    except Exception:
        return False
    return True


def _script(path: Path, body: str) -> str:
    """An executable Python script standing in for a profiler."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


# ------------------------------------------------------------------------ end to end on the CPU
@pytest.fixture(scope="module")
def cpu_sweep(tmp_path_factory):
    """`scripts/profile_harness.py ch1 --profile all` on the CPU with no Nsight tool anywhere on PATH."""
    out = tmp_path_factory.mktemp("profiles")
    empty_bin = tmp_path_factory.mktemp("bin")
    env = {**os.environ, "PATH": str(empty_bin), "CUDA_HOME": str(empty_bin)}
    proc = subprocess.run([sys.executable, "scripts/profile_harness.py", "ch1", "--profile", "all", "--size", "tiny",
                           "--device", "cpu", "--seed", "3", "--output-root", str(out)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    return proc, out


def test_cpu_sweep_exits_0_with_nsight_unavailable(cpu_sweep):
    proc, out = cpu_sweep
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["tools"]["ncu"] == "unavailable: no CUDA GPU"
    assert summary["run"]["tools"]["nsys"] == "unavailable: no CUDA GPU"
    by_id = {e["id"]: e for e in summary["examples"]}
    assert by_id["ch1/pinned_memory"]["status"] == "skipped"
    for ex_id in ("ch1/batched_matmul", "ch1/batch_size_throughput", "ch1/preallocated_buffers"):
        variants = by_id[ex_id]["variants"]
        assert [v["role"] for v in variants] == ["baseline", "optimized"]
        for v in variants:
            assert v["profilers"]["torch"]["status"] == "ok", v
            assert v["profilers"]["ncu"] == {**v["profilers"]["ncu"], "status": "unavailable", "reason": "no CUDA GPU"}
            status = json.loads((out / ex_id / v["name"] / "nsys" / "status.json").read_text())
            assert status["status"] == "unavailable"
    md = (out / "summary.md").read_text()
    assert "Unavailable: no CUDA GPU" in md and "ch1/batched_matmul | bmm | optimized | ok" in md


def test_cpu_torch_artifacts(cpu_sweep):
    _, out = cpu_sweep
    d = out / "ch1" / "batched_matmul" / "bmm" / "torch"
    for name in ("command.json", "stdout.log", "stderr.log", "status.json", "key_averages.txt", "trace/trace.json"):
        assert (d / name).is_file(), name
    trace = json.loads((d / "trace" / "trace.json").read_text())
    assert trace["distributedInfo"] == {"rank": 0, "world_size": 1}
    assert '"rank": 0' in (d / "trace" / "trace.json").read_text()  # the pattern HTA looks for
    names = {e.get("name") for e in trace["traceEvents"]}
    assert "aisp.ch1.batched_matmul.bmm" in names and "aten::bmm" in names
    metrics = json.loads((d / "status.json").read_text())["metrics"]
    assert metrics["steps"] == 3 and metrics["cpu_ms_per_step"] > 0 and metrics["kernels_per_step"] == 0
    assert metrics["hta"].startswith("unavailable: ")  # CPU-only trace, or HTA not installed: recorded, not raised
    command = json.loads((d / "command.json").read_text())
    assert command["ran"] and "--mode torch" in command["commands"][0]


# ---------------------------------------------------------------------------------- availability
def test_missing_tools_are_unavailable(tmp_path):
    env = {"PATH": str(tmp_path)}
    tools = check_tools(["torch", "ncu", "nsys"], "cuda", env=env, globs={})
    assert tools["torch"].available
    assert tools["ncu"].reason.startswith("ncu not found")
    assert tools["nsys"].reason.startswith("nsys not found")
    cpu = check_tools(["ncu"], "cpu", env=env, globs={})
    assert cpu["ncu"].reason == "no CUDA GPU"


def test_tool_that_cannot_report_its_version_is_unavailable(tmp_path):
    broken = _script(tmp_path / "ncu", "import sys; print('cannot load libcuda'); sys.exit(3)\n")
    tools = check_tools(["ncu"], "cuda", env={"PATH": str(tmp_path)}, globs={})
    assert tools["ncu"].path == broken
    assert "exited with code 3" in tools["ncu"].reason and "cannot load libcuda" in tools["ncu"].reason


def test_cli_usage_errors(capsys):
    assert main(["ch99", "--dry-run"]) == 2
    assert main(["ch1", "--profile", "vtune", "--dry-run"]) == 2
    assert main(["ch1/batched_matmul", "--variant", "nosuch", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown chapter 'ch99'" in err and "unknown profiler vtune" in err and "no variant 'nosuch'" in err


# --------------------------------------------------------------------------------------- dry run
def test_dry_run_prints_the_exact_commands(tmp_path, capsys):
    ncu = _script(tmp_path / "ncu", "")
    nsys = _script(tmp_path / "nsys", "")
    root = tmp_path / "out"
    assert main(["ch1/batched_matmul", "--profile", "all", "--variant", "baseline", "--device", "cpu", "--seed", "7",
                 "--output-root", str(root), "--ncu", ncu, "--nsys", nsys, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    d = root / "ch1" / "batched_matmul" / "baseline"
    child = ("-m harness.profile_child ch1/batched_matmul.py --example-id ch1/batched_matmul --variant baseline "
             "--size tiny --device cpu --seed 7")
    py = shlex.quote(sys.executable)
    assert lines == [
        f"{py} {child} --mode torch --iters 3 --warmup 3 --out {d}/torch",
        f"{py} {REPO_ROOT}/tools/hta_summary.py {d}/torch/trace --out {d}/torch/hta",
        f"{ncu} --profile-from-start off --nvtx --nvtx-include aisp.ch1.batched_matmul.baseline/ --clock-control none "
        f"--launch-count 40 --metrics {','.join(Settings.ncu_metrics)} --export {d}/ncu/report --force-overwrite "
        f"{py} {child} --mode range --iters 1 --warmup 3 --out {d}/ncu",
        f"{ncu} --import {d}/ncu/report.ncu-rep --csv --page raw --print-units base",
        f"{nsys} profile --trace=cuda,nvtx,osrt --capture-range=cudaProfilerApi --capture-range-end=stop --sample=none "
        f"--cpuctxsw=none --force-overwrite=true -o {d}/nsys/report {py} {child} --mode range --iters 3 --warmup 3 "
        f"--out {d}/nsys",
        f"{nsys} stats --report cuda_gpu_kern_sum,cuda_api_sum,nvtx_sum,cuda_gpu_mem_time_sum --format csv --force-export=true "
        f"--output {d}/nsys/stats {d}/nsys/report.nsys-rep",
    ]
    assert not root.exists()  # a dry run writes nothing


def test_range_names_are_safe_for_the_ncu_filter():
    assert range_name("ch1/batched_matmul", "bmm") == "aisp.ch1.batched_matmul.bmm"
    assert range_name("ch1/x", "pinned+non/blocking@2 [a]") == "aisp.ch1.x.pinned_non_blocking_2_a_"


# ---------------------------------------------------------------------- ncu and nsys plumbing (fakes)
def _settings(tmp_path: Path, tools: dict) -> Settings:
    return Settings(out_root=tmp_path / "out", size="tiny", device="cpu", seed=1, tools=tools, timeout=120)


FAKE_NCU = """
    import pathlib, subprocess, sys
    args = sys.argv[1:]
    if "--import" in args:
        print(pathlib.Path({csv!r}).read_text())
        sys.exit(0)
    if {picky} and "gmma" in args[args.index("--metrics") + 1]:
        print("==ERROR== Failed to find metric sm__pipe_tensor_op_gmma_cycles_active")
        sys.exit(1)
    print("==PROF== Connected to process 1")
    app = args[args.index("--force-overwrite") + 1:]
    rc = subprocess.call(app)
    pathlib.Path(args[args.index("--export") + 1] + ".ncu-rep").write_bytes(b"fake report")
    sys.exit(rc)
"""


def test_ncu_pipeline_with_a_stand_in_ncu(tmp_path):
    """Runs the real child in range mode under a fake ncu that returns the synthetic CSV."""
    fake = _script(tmp_path / "ncu", FAKE_NCU.format(csv=str(FIXTURES / "synthetic_ncu_raw.csv"), picky=False))
    session = Profiling(_settings(tmp_path, {"ncu": Tool("ncu", fake, "fake")}))
    result = session.run(Job("ch1/batched_matmul", REPO_ROOT / "ch1" / "batched_matmul.py", "bmm", "optimized", "ncu"))
    assert result["status"] == "ok", result
    assert result["clock_control"] == "none"
    assert result["metrics"]["kernels"] == 3 and result["metrics"]["dram_pct"] == pytest.approx(79.94, abs=0.01)
    d = tmp_path / "out" / "ch1" / "batched_matmul" / "bmm" / "ncu"
    assert json.loads((d / "child.json").read_text())["range"] == "aisp.ch1.batched_matmul.bmm"
    assert json.loads((d / "command.json").read_text())["clock_control"] == "none"
    assert json.loads((d / "metrics.json").read_text())["summary"]["kernels"] == 3


def test_ncu_metric_this_gpu_lacks_is_dropped_and_retried(tmp_path):
    fake = _script(tmp_path / "ncu", FAKE_NCU.format(csv=str(FIXTURES / "synthetic_ncu_raw.csv"), picky=True))
    session = Profiling(_settings(tmp_path, {"ncu": Tool("ncu", fake, "fake")}))
    result = session.run(Job("ch1/batched_matmul", REPO_ROOT / "ch1" / "batched_matmul.py", "bmm", "optimized", "ncu"))
    assert result["status"] == "ok", result
    command = json.loads((tmp_path / "out" / "ch1" / "batched_matmul" / "bmm" / "ncu" / "command.json").read_text())
    assert command["metrics_dropped"] == ["sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active"]
    assert "gmma" not in command["commands"][0]


def test_ncu_without_counter_permission_is_unavailable_for_the_rest(tmp_path):
    fake = _script(tmp_path / "ncu", "import sys\nprint('==ERROR== ERR_NVGPUCTRPERM - no permission')\nsys.exit(1)\n")
    session = Profiling(_settings(tmp_path, {"ncu": Tool("ncu", fake, "fake")}))
    jobs = [Job("ch1/batched_matmul", REPO_ROOT / "ch1" / "batched_matmul.py", v, r, "ncu")
            for v, r in (("baseline", "baseline"), ("bmm", "optimized"))]
    first, second = (session.run(j) for j in jobs)
    assert first["status"] == second["status"] == "unavailable"
    assert "ERR_NVGPUCTRPERM" in first["reason"] and second["reason"] == first["reason"]
    assert not json.loads((tmp_path / "out" / "ch1" / "batched_matmul" / "bmm" / "ncu" / "command.json").read_text())["ran"]


def test_nsys_that_writes_only_a_qdstrm_is_unavailable(tmp_path):
    fake = _script(tmp_path / "nsys", """
        import pathlib, sys
        args = sys.argv[1:]
        out = pathlib.Path(args[args.index("-o") + 1])
        out.with_suffix(".qdstrm").write_bytes(b"raw stream")
        print("Generating '/tmp/nsys-report-1.qdstrm'")
        print("Importer error status: Importation failed.", file=sys.stderr)
        sys.exit(0)
    """)
    session = Profiling(_settings(tmp_path, {"nsys": Tool("nsys", fake, "fake")}))
    jobs = [Job("ch1/batched_matmul", REPO_ROOT / "ch1" / "batched_matmul.py", v, r, "nsys")
            for v, r in (("baseline", "baseline"), ("bmm", "optimized"))]
    first, second = (session.run(j) for j in jobs)
    assert first["status"] == "unavailable"
    assert first["reason"].startswith("nsys wrote a .qdstrm but could not import it")
    assert "Importer error status" in first["reason"]
    assert second == {**second, "status": "unavailable", "reason": first["reason"]}


# -------------------------------------------------------------------------------------- parsers
def test_ncu_parser_synthetic_raw_page():
    result = ncu_tool.extract((FIXTURES / "synthetic_ncu_raw.csv").read_text())
    kernels, s = result["kernels"], result["summary"]
    assert [k["name"] for k in kernels] == ["kernel_a(float*, int)", "kernel_b<128>(float const*)", "kernel_a(float*, int)"]
    assert kernels[0]["metrics"]["gpu__time_duration.sum"] == 3000.0 and kernels[0]["units"]["gpu__time_duration.sum"] == "ns"
    assert kernels[2]["metrics"]["gpu__time_duration.sum"] == 1_000_000.0  # "1,000" usecond
    assert kernels[0]["metrics"]["sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active"] is None
    assert s["kernels"] == 3 and s["gpu_time_ms"] == pytest.approx(1.004)
    assert s["dram_pct"] == pytest.approx((80 * 3000 + 20 * 1000 + 80 * 1e6) / 1_004_000)
    assert s["tensor_pct"] == pytest.approx(40 * 1000 / 1_004_000)
    assert s["top_kernels"][0] == {"name": "kernel_a(float*, int)", "count": 2, "time_ms": pytest.approx(1.003)}


def test_ncu_parser_synthetic_details_page():
    s = ncu_tool.extract((FIXTURES / "synthetic_ncu_details.csv").read_text())["summary"]
    assert s["kernels"] == 2 and s["gpu_time_ms"] == pytest.approx(1.502)
    assert s["dram_pct"] == pytest.approx(12.25)  # k2's n/a is left out, not read as 0


def test_ncu_parser_rejects_output_without_csv():
    with pytest.raises(ValueError, match="no ncu CSV header"):
        ncu_tool.extract("==ERROR== something went wrong\n")


@pytest.mark.skipif(not GPU_NCU_CSV.exists(), reason="GPU fixture gpu_ncu_raw.csv not captured yet")
def test_ncu_parser_on_real_gpu_output():
    s = ncu_tool.extract(GPU_NCU_CSV.read_text())["summary"]
    assert s["kernels"] > 0 and s["gpu_time_ms"] > 0
    for key in ("dram_pct", "sm_pct", "occupancy_pct", "l2_hit_pct"):
        assert s[key] is not None and 0 <= s[key] <= 100.5, key


def test_nsys_summary_synthetic():
    result = nsys_tool.extract(FIXTURES / "synthetic_nsys")
    s = result["summary"]
    assert result["missing"] == []
    assert s["kernel_time_ms"] == pytest.approx(0.004) and s["kernel_instances"] == 4 and s["cuda_api_calls"] == 6
    assert s["top_kernels"][0] == {"name": "kernel_a(float*)", "total_ms": pytest.approx(0.003), "instances": 3}
    assert s["nvtx_ranges"][0]["name"] == "aisp.ch1.batched_matmul.baseline"
    assert s["memcpy_time_ms"] == pytest.approx(0.005) and s["memcpy_count"] == 2


# ------------------------------------------------------------------------------------------- HTA
def test_torch_trace_summary_counts_per_step(tmp_path):
    x = lambda cat, name, dur, **args: {"ph": "X", "cat": cat, "name": name, "ts": 0, "dur": dur, "args": args}  # noqa: E731
    events = [x("user_annotation", "ProfilerStep#1", 50), x("user_annotation", "ProfilerStep#2", 50),
              x("user_annotation", "aisp.ch1.x.v", 40), x("user_annotation", "aisp.ch1.x.v", 20),
              x("kernel", "k", 10), x("kernel", "k", 30), x("gpu_memcpy", "Memcpy HtoD", 4, bytes=100_000)]
    (tmp_path / "t.json").write_text(json.dumps({"traceEvents": events}))
    m = summarize_torch_trace(tmp_path / "t.json", "aisp.ch1.x.v")
    assert m == {"steps": 2, "cpu_ms_per_step": 0.03, "kernels_per_step": 1.0, "kernel_ms_per_step": 0.02,
                 "copies_per_step": 0.5, "copy_ms_per_step": 0.002, "copy_gbps": 25.0}


@pytest.mark.skipif(not (GPU_TRACE_DIR / "trace.json").exists(), reason="GPU fixture gpu_trace/trace.json not captured yet")
def test_torch_trace_summary_on_real_gpu_trace():
    m = summarize_torch_trace(GPU_TRACE_DIR / "trace.json")
    assert m["steps"] >= 1 and m["kernels_per_step"] > 0 and m["kernel_ms_per_step"] > 0


@pytest.mark.skipif(not (GPU_TRACE_DIR / "trace.json").exists(), reason="GPU fixture gpu_trace/trace.json not captured yet")
@pytest.mark.skipif(not _hta_importable(), reason="HTA (holistictraceanalysis, with PyYAML) not importable")
def test_hta_on_real_gpu_trace(tmp_path):
    result = hta_tool.summarize(GPU_TRACE_DIR, tmp_path)
    assert result["status"] == "ok", result
    assert isinstance(result["analyses"]["temporal"], dict) and isinstance(result["analyses"]["kernels"], dict)
    assert 0 <= result["headline"]["idle_pct"] <= 100
    assert (tmp_path / "temporal_breakdown.csv").exists() and (tmp_path / "hta_summary.json").exists()


def test_hta_on_cpu_trace_is_unavailable_not_a_crash(cpu_sweep, tmp_path):
    _, out = cpu_sweep
    result = hta_tool.summarize(out / "ch1" / "batched_matmul" / "baseline" / "torch" / "trace", tmp_path)
    assert result["status"] == "unavailable" and result["reason"]
    assert json.loads((tmp_path / "hta_summary.json").read_text())["status"] == "unavailable"


# --------------------------------------------------------------------------------------- compare
def _results(name: str, ms: float) -> dict:
    return {"run": {"device": {"name": name}}, "examples": [
        {"id": "ch1/x", "speedup": 2.0 * ms, "variants": [{"name": "baseline", "median_ms": ms, "gbps": None}]}]}


def test_compare_runs_results_and_summaries(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(_results("H100", 2.0)))
    (tmp_path / "b" / "results.json").write_text(json.dumps(_results("H200", 1.0)))
    assert compare_tool.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "| ch1/x | baseline | median_ms | 2 | 1 | 0.5 |" in out and "| H100 | H200 |" in out
    summary = {"run": {"device": {"name": "cpu"}}, "examples": [{"id": "ch1/x", "variants": [
        {"name": "baseline", "profilers": {"ncu": {"metrics": {"dram_pct": 50.0, "top_kernel": "k"}}}}]}]}
    assert compare_tool.flatten(summary) == {("ch1/x", "baseline", "ncu.dram_pct"): 50.0}
    assert compare_tool.main([str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
