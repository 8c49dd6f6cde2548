"""The profiling package on the CPU: torch.profiler end to end, trace trimming, tool availability, dry runs, the parsers.

Fixtures named synthetic_* are hand-written to test format handling only. gpu_trace/ and gpu_ncu_raw.csv
are real output captured on the GPU machine; tests that need them skip while they are absent.
"""
from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from harness.device import REPO_ROOT
from harness.example import range_name
from harness.process import run_isolated
from profiling import child, cli, hta_summary, ncu_metrics, nsys_summary, torch_trace
from profiling.cli import main
from profiling.runner import PROFILE_SIZE, Job, Profiling, Settings, hta_installed
from profiling.summary import add_skipped_variant, add_to_summary, costs_section, profiler_section
from profiling.tools import Tool, check_tools
from tools import compare_runs

FIXTURES = Path(__file__).parent / "fixtures" / "profiling"
GPU_TRACE_DIR = FIXTURES / "gpu_trace"
GPU_NCU_CSV = FIXTURES / "gpu_ncu_raw.csv"
BMM = REPO_ROOT / "ch1" / "batched_matmul.py"
GPU_RANGE = "aisp.ch1.batched_matmul.baseline"   # the range in gpu_trace/trace.json


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


# ------------------------------------------------------------------------------ the package's shape
def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_harness_never_imports_profiling_and_nothing_loads_a_module_by_path():
    for path in sorted((REPO_ROOT / "harness").rglob("*.py")):
        assert not any(m == "profiling" or m.startswith("profiling.") for m in _imports(path)), path
    for path in sorted((REPO_ROOT / "profiling").glob("*.py")) + [REPO_ROOT / "scripts" / "profile_harness.py"]:
        assert "spec_from_file_location" not in path.read_text(), path


# ------------------------------------------------------------------------ end to end on the CPU
@pytest.fixture(scope="module")
def cpu_sweep(tmp_path_factory):
    """`scripts/profile_harness.py` (the old entry point) on the CPU with no Nsight tool anywhere on PATH."""
    out = tmp_path_factory.mktemp("profiles")
    empty_bin = tmp_path_factory.mktemp("bin")
    env = {**os.environ, "PATH": str(empty_bin), "CUDA_HOME": str(empty_bin)}
    proc = subprocess.run([sys.executable, "scripts/profile_harness.py", "ch1/batched_matmul", "ch1/pinned_memory",
                           "--profile", "all", "--device", "cpu", "--seed", "3", "--trace-max-events", "100",
                           "--output-root", str(out)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    return proc, out


def test_cpu_sweep_exits_0_with_nsight_unavailable(cpu_sweep):
    proc, out = cpu_sweep
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    run = summary["run"]
    assert run["size"] == "tiny" and run["tools"]["ncu"] == run["tools"]["nsys"] == "unavailable: no CUDA GPU"
    assert run["elapsed_s"] > 0 and run["disk_bytes"] > 0 and not run.get("interrupted")
    by_id = {e["id"]: e for e in summary["examples"]}
    assert by_id["ch1/pinned_memory"]["status"] == "skipped"
    variants = by_id["ch1/batched_matmul"]["variants"]
    assert [(v["name"], v["role"]) for v in variants] == [("baseline", "baseline"), ("bmm", "optimized")]
    for v in variants:
        torch_result = v["profilers"]["torch"]
        assert torch_result["status"] == "ok" and torch_result["wall_s"] > 0 and torch_result["disk_bytes"] > 0
        assert v["profilers"]["ncu"] == {**v["profilers"]["ncu"], "status": "unavailable", "reason": "no CUDA GPU"}
        status = json.loads((out / "ch1/batched_matmul" / v["name"] / "nsys" / "status.json").read_text())
        assert status["status"] == "unavailable"
    md = (out / "summary.md").read_text()
    assert "Unavailable: no CUDA GPU" in md and "| ch1/batched_matmul | bmm | optimized | ok |" in md
    assert "## Time and disk" in md


def test_cpu_torch_artifacts_and_a_trimmed_trace(cpu_sweep):
    _, out = cpu_sweep
    d = out / "ch1" / "batched_matmul" / "baseline" / "torch"
    for name in ("command.json", "stdout.log", "stderr.log", "status.json", "key_averages.txt", "trace/trace.json"):
        assert (d / name).is_file(), name
    trace = json.loads((d / "trace" / "trace.json").read_text())
    assert trace["distributedInfo"] == {"rank": 0, "world_size": 1}
    assert '"rank": 0' in (d / "trace" / "trace.json").read_text()  # the pattern HTA looks for
    names = [e.get("name") for e in trace["traceEvents"]]
    assert "aisp.ch1.batched_matmul.baseline" in names and "aten::mm" in names
    status = json.loads((d / "status.json").read_text())
    metrics, trim = status["metrics"], status["trim"]
    # The loop of 40 products is more than 100 events a call: the figures come from all 3 calls, the file keeps 1.
    assert metrics["steps"] == 3 and metrics["cpu_ms_per_step"] > 0 and metrics["kernels_per_step"] == 0
    assert trim["trimmed"] and trim["instances"] == 3 and trim["kept_instances"] == 1
    assert trim["bytes_after"] < trim["bytes_before"] and names.count("aisp.ch1.batched_matmul.baseline") == 1
    assert metrics["trace"].startswith(f"kept {trim['kept_events']} of {trim['events']} events: 1 of 3 calls")
    assert metrics["hta"].startswith("unavailable: ")  # CPU-only trace, or HTA not installed: recorded, not raised
    assert "torch trace: kept" in (out / "summary.md").read_text()
    command = json.loads((d / "command.json").read_text())
    assert command["ran"] and "--mode torch" in command["commands"][0] and "-m profiling.child" in command["commands"][0]


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
    for bad in (["--iters", "1000"], ["--iters", "0"], ["--timeout", "-1"], ["--launch-count", "0"], ["--budget", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["ch1/batched_matmul", "--dry-run", *bad])
        assert exit_info.value.code == 2, bad
    err = capsys.readouterr().err
    assert "unknown chapter 'ch99'" in err and "unknown profiler vtune" in err and "no variant 'nosuch'" in err
    assert all(line.startswith("profiling: ") for line in err.splitlines())


def test_old_entry_point_still_answers():
    proc = subprocess.run([sys.executable, "scripts/profile_harness.py", "ch99"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "profiling: unknown chapter 'ch99'; chapters here: " \
        + ", ".join(p.name for p in sorted(REPO_ROOT.glob("ch*"), key=lambda p: int(p.name[2:])) if p.is_dir())


# --------------------------------------------------------------------------------------- dry run
def test_dry_run_prints_the_exact_commands(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "hta_installed", lambda: True)
    ncu = _script(tmp_path / "ncu", "")
    nsys = _script(tmp_path / "nsys", "")
    root = tmp_path / "out"
    assert main(["ch1/batched_matmul", "--profile", "all", "--variant", "baseline", "--device", "cpu", "--seed", "7",
                 "--output-root", str(root), "--ncu", ncu, "--nsys", nsys, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    d = root / "ch1" / "batched_matmul" / "baseline"
    child_cmd = ("-m profiling.child ch1/batched_matmul.py --example-id ch1/batched_matmul --variant baseline "
                 "--size tiny --device cpu --seed 7")
    py = shlex.quote(sys.executable)
    assert lines == [
        f"{py} {child_cmd} --mode torch --iters 3 --warmup 2 --iter-budget 2 --trace-max-events 20000 --out {d}/torch",
        f"{py} -m profiling.hta_summary {d}/torch/trace --out {d}/torch/hta",
        f"{ncu} --profile-from-start off --nvtx --nvtx-include aisp.ch1.batched_matmul.baseline/ --clock-control none "
        f"--launch-skip 0 --launch-count 8 --metrics {','.join(Settings.ncu_metrics)} --export {d}/ncu/report "
        f"--force-overwrite {py} {child_cmd} --mode range --iters 1 --warmup 2 --iter-budget 2 --out {d}/ncu",
        f"{ncu} --import {d}/ncu/report.ncu-rep --csv --page raw --print-units base",
        f"{nsys} profile --trace=cuda,nvtx,osrt --capture-range=cudaProfilerApi --capture-range-end=stop --sample=none "
        f"--cpuctxsw=none --force-overwrite=true -o {d}/nsys/report {py} {child_cmd} --mode range --iters 3 --warmup 2 "
        f"--iter-budget 2 --out {d}/nsys",
        f"{nsys} stats --report cuda_gpu_kern_sum,cuda_api_sum,nvtx_sum,cuda_gpu_mem_time_sum --format csv --force-export=true "
        f"--output {d}/nsys/stats {d}/nsys/report.nsys-rep",
    ]
    assert not root.exists()  # a dry run writes nothing


def test_gpu_defaults_small_size_few_kernels_and_no_hta_where_it_is_missing(tmp_path, capsys, monkeypatch):
    """What a plain run on a GPU does, seen through a dry run (no GPU needed to print the commands)."""
    monkeypatch.setattr(cli, "hta_installed", lambda: False)
    ncu = _script(tmp_path / "ncu", "")
    assert main(["ch1/batched_matmul", "--profile", "torch,ncu", "--variant", "bmm", "--device", "cuda",
                 "--ncu", ncu, "--output-root", str(tmp_path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert PROFILE_SIZE == "small" and len(lines) == 3  # no HTA command: HTA is not installed
    assert all(f"--size {PROFILE_SIZE} --device cuda" in line for line in lines if "profiling.child" in line)
    assert "--launch-skip 0 --launch-count 8" in lines[1] and "--mode range --iters 1 " in lines[1]
    assert main(["ch1/batched_matmul", "--profile", "ncu", "--variant", "bmm", "--device", "cuda", "--ncu", ncu,
                 "--launch-skip", "40", "--launch-count", "2", "--iters", "4", "--size", "full",
                 "--output-root", str(tmp_path), "--dry-run"]) == 0
    line = capsys.readouterr().out.splitlines()[0]  # kernels to skip first: then every call goes in the range
    assert "--launch-skip 40 --launch-count 2" in line and "--size full" in line and "--mode range --iters 4 " in line


def test_range_names_are_safe_for_the_ncu_filter():
    assert range_name("ch1/batched_matmul", "bmm") == "aisp.ch1.batched_matmul.bmm"
    assert range_name("ch1/x", "pinned+non/blocking@2 [a]") == "aisp.ch1.x.pinned_non_blocking_2_a_"


# ------------------------------------------------------------------ per-variant requirements, budget
GPU_ONLY_VARIANT = '''
import torch
from harness import Example, Requires, Variant
EXAMPLE = Example(
    title="one variant needs a GPU",
    setup=lambda size, device, seed: {"x": torch.ones(8, device=device)},
    baseline=lambda inp: inp["x"] * 2,
    optimized={"doubled": lambda inp: inp["x"] + inp["x"],
               "on_gpu": Variant(lambda inp: inp["x"] * 2, requires=Requires(cuda=True))},
)
'''


def test_variant_whose_requirement_is_unmet_is_skipped_with_its_reason(tmp_path, capsys):
    example = tmp_path / "ch9" / "gpu_variant.py"
    example.parent.mkdir()
    example.write_text(GPU_ONLY_VARIANT)
    assert main([str(example), "--profile", "torch", "--device", "cpu", "--output-root", str(tmp_path / "o"),
                 "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "# ch9/gpu_variant on_gpu: skipped: needs CUDA" in captured.err.splitlines()
    children = [ln for ln in captured.out.splitlines() if "profiling.child" in ln]
    assert [ln.split("--variant ")[1].split()[0] for ln in children] == ["baseline", "doubled"]
    # The child, asked for it anyway, says the same.
    assert child.main([str(example), "--example-id", "ch9/gpu_variant", "--variant", "on_gpu", "--size", "tiny",
                       "--device", "cpu", "--mode", "range", "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "child.json").read_text())["reason"] == "needs CUDA"
    summary = {"run": {}, "examples": []}
    add_skipped_variant(summary, "ch9/gpu_variant", "t", "on_gpu", "optimized", "needs CUDA")
    assert summary["examples"][0]["variants"] == [{"name": "on_gpu", "role": "optimized", "profilers": {},
                                                   "skipped": "needs CUDA"}]


def test_spent_budget_lists_the_jobs_not_run(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["ch1/batched_matmul", "--profile", "torch", "--device", "cpu", "--budget", "1e-9",
                 "--output-root", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["budget_skipped"] == 2
    assert {v["profilers"]["torch"]["status"] for v in summary["examples"][0]["variants"]} == {"skipped"}
    assert "**incomplete**: 2 job(s) not run" in (out / "summary.md").read_text()
    assert not (out / "ch1").exists()  # nothing was started


def test_ctrl_c_keeps_what_finished_and_marks_the_summary(tmp_path, monkeypatch, capsys):
    calls = []

    def run_job(self, job):
        calls.append(job.variant)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {"status": "ok", "reason": "", "metrics": {"steps": 3}, "wall_s": 0.1}

    monkeypatch.setattr(Profiling, "run", run_job)
    out = tmp_path / "o"
    assert main(["ch1/batched_matmul", "--profile", "torch", "--device", "cpu", "--output-root", str(out)]) == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["interrupted"] and calls == ["baseline", "bmm"]
    assert [v["name"] for v in summary["examples"][0]["variants"]] == ["baseline"]
    assert "**interrupted**" in (out / "summary.md").read_text()


def test_interrupted_wait_kills_the_child_process_group(monkeypatch):
    started = []

    class InterruptedPopen(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

        def wait(self, timeout=None):
            if timeout is not None:  # the runner's wait: as if Ctrl-C came during it
                raise KeyboardInterrupt
            return super().wait()

    monkeypatch.setattr(subprocess, "Popen", InterruptedPopen)
    with pytest.raises(KeyboardInterrupt):
        run_isolated([sys.executable, "-c", "import time; time.sleep(60)"], timeout=60,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert started[0].poll() is not None  # killed and reaped, not left running


def test_slow_calls_lower_the_number_of_profiled_calls():
    assert child.capped_iters(3, call_s=0.01, budget_s=2.0) == 3
    assert child.capped_iters(3, call_s=0.9, budget_s=2.0) == 2
    assert child.capped_iters(3, call_s=5.0, budget_s=2.0) == 1


# ---------------------------------------------------------------------- ncu and nsys plumbing (fakes)
def _settings(tmp_path: Path, tools: dict, **kw) -> Settings:
    return Settings(out_root=tmp_path / "out", size="tiny", device="cpu", seed=1, tools=tools, timeout=120, **kw)


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


def _bmm_job(variant: str = "bmm", role: str = "optimized", profiler: str = "ncu") -> Job:
    return Job("ch1/batched_matmul", BMM, variant, role, profiler)


def test_ncu_pipeline_with_a_stand_in_ncu(tmp_path):
    """Runs the real child in range mode under a fake ncu that returns the synthetic CSV (3 kernels)."""
    fake = _script(tmp_path / "ncu", FAKE_NCU.format(csv=str(FIXTURES / "synthetic_ncu_raw.csv"), picky=False))
    session = Profiling(_settings(tmp_path, {"ncu": Tool("ncu", fake, "fake")}, launch_count=3))
    result = session.run(_bmm_job())
    assert result["status"] == "ok", result
    assert result["clock_control"] == "none"
    assert result["metrics"]["kernels"] == 3 and result["metrics"]["dram_pct"] == pytest.approx(79.94, abs=0.01)
    assert result["metrics"]["capped"]  # as many kernels as --launch-count: the range may hold more
    d = tmp_path / "out" / "ch1" / "batched_matmul" / "bmm" / "ncu"
    assert json.loads((d / "child.json").read_text())["range"] == "aisp.ch1.batched_matmul.bmm"
    command = json.loads((d / "command.json").read_text())
    assert command["clock_control"] == "none" and command["launch_count"] == 3 and command["launch_skip"] == 0
    assert json.loads((d / "metrics.json").read_text())["summary"]["kernels"] == 3
    summary = {"run": {"profilers": ["ncu"]}, "examples": []}
    add_to_summary(summary, _bmm_job(), result)
    assert "| yes |" in "\n".join(profiler_section(summary, "ncu"))


def test_ncu_metric_this_gpu_lacks_is_dropped_and_retried(tmp_path):
    fake = _script(tmp_path / "ncu", FAKE_NCU.format(csv=str(FIXTURES / "synthetic_ncu_raw.csv"), picky=True))
    session = Profiling(_settings(tmp_path, {"ncu": Tool("ncu", fake, "fake")}))
    result = session.run(_bmm_job())
    assert result["status"] == "ok", result
    assert not result["metrics"]["capped"]  # 3 kernels profiled, 8 allowed: the range held them all
    command = json.loads((tmp_path / "out" / "ch1" / "batched_matmul" / "bmm" / "ncu" / "command.json").read_text())
    assert command["metrics_dropped"] == ["sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active"]
    assert "gmma" not in command["commands"][0]


def test_ncu_without_counter_permission_is_unavailable_for_the_rest(tmp_path):
    fake = _script(tmp_path / "ncu", "import sys\nprint('==ERROR== ERR_NVGPUCTRPERM - no permission')\nsys.exit(1)\n")
    session = Profiling(_settings(tmp_path, {"ncu": Tool("ncu", fake, "fake")}))
    first, second = session.run(_bmm_job("baseline", "baseline")), session.run(_bmm_job())
    assert first["status"] == second["status"] == "unavailable"
    assert "ERR_NVGPUCTRPERM" in first["reason"] and second["reason"] == first["reason"]
    assert not json.loads((tmp_path / "out" / "ch1" / "batched_matmul" / "bmm" / "ncu" / "command.json").read_text())["ran"]


def test_nsys_that_writes_only_a_qdstrm_is_unavailable_and_the_qdstrm_deleted(tmp_path):
    in_tmp = Path(tempfile.gettempdir()) / f"nsys-report-aisp-test-{os.getpid()}.qdstrm"
    fake = _script(tmp_path / "nsys", f"""
        import pathlib, sys
        args = sys.argv[1:]
        out = pathlib.Path(args[args.index("-o") + 1])
        out.with_suffix(".qdstrm").write_bytes(b"raw stream" * 1000)
        pathlib.Path({str(in_tmp)!r}).write_bytes(b"raw stream")
        print("Generating '{in_tmp}'")
        print("Importer error status: Importation failed.", file=sys.stderr)
        sys.exit(0)
    """)
    session = Profiling(_settings(tmp_path, {"nsys": Tool("nsys", fake, "fake")}))
    first, second = session.run(_bmm_job("baseline", "baseline", "nsys")), session.run(_bmm_job(profiler="nsys"))
    assert first["status"] == "unavailable"
    assert first["reason"].startswith("nsys wrote a .qdstrm but could not import it")
    assert "Importer error status" in first["reason"]
    assert first["deleted"] == f"report.qdstrm (0.01 MB), {in_tmp.name} (1e-05 MB)"
    assert first["reason"].endswith(f"; deleted {first['deleted']}")
    assert not in_tmp.exists() and not list((tmp_path / "out").rglob("*.qdstrm"))
    assert second == {**second, "status": "unavailable", "reason": first["reason"].split("; deleted")[0]}
    summary = {"run": {"profilers": ["nsys"]}, "examples": []}
    add_to_summary(summary, _bmm_job("baseline", "baseline", "nsys"), first)
    assert "- ch1/batched_matmul baseline nsys: deleted report.qdstrm (0.01 MB)" in "\n".join(costs_section(summary))


def test_nsys_pipeline_with_a_stand_in_nsys(tmp_path):
    fake = _script(tmp_path / "nsys", f"""
        import pathlib, shutil, subprocess, sys
        args = sys.argv[1:]
        if args[0] == "profile":
            out = pathlib.Path(args[args.index("-o") + 1])
            rc = subprocess.call(args[args.index("-o") + 2:])
            out.with_suffix(".nsys-rep").write_bytes(b"fake report")
            sys.exit(rc)
        prefix = args[args.index("--output") + 1]
        for f in pathlib.Path({str(FIXTURES / "synthetic_nsys")!r}).glob("stats_*.csv"):
            shutil.copy(f, prefix + f.name[len("stats"):])
        pathlib.Path(args[-1]).with_suffix(".sqlite").write_bytes(b"x" * 5000)
    """)
    session = Profiling(_settings(tmp_path, {"nsys": Tool("nsys", fake, "fake")}))
    result = session.run(_bmm_job(profiler="nsys"))
    assert result["status"] == "ok", result
    assert result["metrics"]["kernel_instances"] == 4 and result["metrics"]["top_kernel"] == "kernel_a(float*)"
    assert result["deleted"] == "report.sqlite (0.005 MB)"  # derived, and `nsys export` makes it again
    assert not (tmp_path / "out" / "ch1" / "batched_matmul" / "bmm" / "nsys" / "report.sqlite").exists()


# ------------------------------------------------------------------------------------ trace trimming
@pytest.fixture(scope="module")
def gpu_trace() -> dict:
    if not (GPU_TRACE_DIR / "trace.json").exists():
        pytest.skip("GPU fixture gpu_trace/trace.json not captured yet")
    return json.loads((GPU_TRACE_DIR / "trace.json").read_text())


def test_trim_keeps_whole_calls_with_their_kernels(gpu_trace):
    events = gpu_trace["traceEvents"]
    trimmed, report = torch_trace.trim(gpu_trace, GPU_RANGE, max_events=600, max_outside=10)
    kept = trimmed["traceEvents"]
    assert report == {"events": len(events), "instances": 3, "outside": 5, "trimmed": True, "kept_events": len(kept),
                      "kept_instances": 1, "kept_outside": 5, "first_instance_cut": False, "max_events": 600,
                      "max_outside": 10}
    assert [e for e in events if e.get("ph") == "M"] == [e for e in kept if e.get("ph") == "M"]
    assert sum(1 for e in kept if str(e.get("name")).startswith("ProfilerStep#")) == 1
    launches = {e["args"]["correlation"] for e in kept if e.get("cat") in ("cuda_runtime", "cuda_driver")
                and "correlation" in e.get("args", {})}
    kernels = [e for e in kept if e.get("cat") == "kernel"]
    assert len(kernels) == 40 and all(k["args"]["correlation"] in launches for k in kernels)
    assert all(e["id"] in launches for e in kept if e.get("ph") in ("s", "f"))
    whole, one = torch_trace.summarize_events(events, GPU_RANGE), torch_trace.summarize_events(kept, GPU_RANGE)
    assert whole["steps"] == 3 and one["steps"] == 1 and one["kernels_per_step"] == whole["kernels_per_step"] == 40


def test_trim_leaves_a_small_trace_whole_and_cuts_an_oversized_call(gpu_trace):
    same, report = torch_trace.trim(gpu_trace, GPU_RANGE)
    assert same is gpu_trace and not report["trimmed"] and report["kept_instances"] == 3
    assert torch_trace.describe_trim(report) == "whole"
    cut, report = torch_trace.trim(gpu_trace, GPU_RANGE, max_events=100, max_outside=0)
    assert report["first_instance_cut"] and report["kept_instances"] == 1 and report["kept_outside"] == 0
    assert len([e for e in cut["traceEvents"] if e.get("ph") != "M"]) == 100
    assert "(first call cut)" in torch_trace.describe_trim(report)
    start, report = torch_trace.trim(gpu_trace, "aisp.no.such.range", max_events=100)
    assert report["instances"] == report["kept_instances"] == 0 and report["kept_outside"] == 100


def test_child_trims_the_trace_it_writes(tmp_path):
    assert child.main([str(BMM), "--example-id", "ch1/batched_matmul", "--variant", "baseline", "--size", "tiny",
                       "--device", "cpu", "--mode", "torch", "--iters", "2", "--trace-max-events", "100",
                       "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "child.json").read_text())
    trim = result["trim"]
    assert result["trace_metrics"]["steps"] == 2 and trim["trimmed"] and trim["kept_instances"] == 1
    assert trim["bytes_after"] == (tmp_path / "trace" / "trace.json").stat().st_size < trim["bytes_before"]
    assert result["call_ms"] > 0 and result["iters"] == 2 and "iters_capped_from" not in result


# -------------------------------------------------------------------------------------- parsers
def test_ncu_parser_synthetic_raw_page():
    result = ncu_metrics.extract((FIXTURES / "synthetic_ncu_raw.csv").read_text())
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
    s = ncu_metrics.extract((FIXTURES / "synthetic_ncu_details.csv").read_text())["summary"]
    assert s["kernels"] == 2 and s["gpu_time_ms"] == pytest.approx(1.502)
    assert s["dram_pct"] == pytest.approx(12.25)  # k2's n/a is left out, not read as 0


def test_ncu_parser_rejects_output_without_csv():
    with pytest.raises(ValueError, match="no ncu CSV header"):
        ncu_metrics.extract("==ERROR== something went wrong\n")


@pytest.mark.skipif(not GPU_NCU_CSV.exists(), reason="GPU fixture gpu_ncu_raw.csv not captured yet")
def test_ncu_parser_on_real_gpu_output():
    s = ncu_metrics.extract(GPU_NCU_CSV.read_text())["summary"]
    assert s["kernels"] > 0 and s["gpu_time_ms"] > 0
    for key in ("dram_pct", "sm_pct", "occupancy_pct", "l2_hit_pct"):
        assert s[key] is not None and 0 <= s[key] <= 100.5, key


def test_nsys_summary_synthetic():
    result = nsys_summary.extract(FIXTURES / "synthetic_nsys")
    s = result["summary"]
    assert result["missing"] == []
    assert s["kernel_time_ms"] == pytest.approx(0.004) and s["kernel_instances"] == 4 and s["cuda_api_calls"] == 6
    assert s["top_kernels"][0] == {"name": "kernel_a(float*)", "total_ms": pytest.approx(0.003), "instances": 3}
    assert s["nvtx_ranges"][0]["name"] == "aisp.ch1.batched_matmul.baseline"
    assert s["memcpy_time_ms"] == pytest.approx(0.005) and s["memcpy_count"] == 2


def test_extract_tools_run_as_modules(tmp_path):
    out = tmp_path / "n.json"
    proc = subprocess.run([sys.executable, "-m", "profiling.nsys_summary", str(FIXTURES / "synthetic_nsys"),
                           "--json", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["summary"]["kernel_instances"] == 4


# ------------------------------------------------------------------------------------------- HTA
def test_torch_trace_summary_counts_per_step(tmp_path):
    x = lambda cat, name, dur, **args: {"ph": "X", "cat": cat, "name": name, "ts": 0, "dur": dur, "args": args}  # noqa: E731
    events = [x("user_annotation", "ProfilerStep#1", 50), x("user_annotation", "ProfilerStep#2", 50),
              x("user_annotation", "aisp.ch1.x.v", 40), x("user_annotation", "aisp.ch1.x.v", 20),
              x("kernel", "k", 10), x("kernel", "k", 30), x("gpu_memcpy", "Memcpy HtoD", 4, bytes=100_000)]
    (tmp_path / "t.json").write_text(json.dumps({"traceEvents": events}))
    m = torch_trace.summarize_torch_trace(tmp_path / "t.json", "aisp.ch1.x.v")
    assert m == {"steps": 2, "cpu_ms_per_step": 0.03, "kernels_per_step": 1.0, "kernel_ms_per_step": 0.02,
                 "copies_per_step": 0.5, "copy_ms_per_step": 0.002, "copy_gbps": 25.0}


def test_torch_trace_summary_on_real_gpu_trace(gpu_trace):
    m = torch_trace.summarize_events(gpu_trace["traceEvents"])
    assert m["steps"] >= 1 and m["kernels_per_step"] > 0 and m["kernel_ms_per_step"] > 0


@pytest.mark.skipif(not _hta_importable(), reason="HTA (holistictraceanalysis, with PyYAML) not importable")
def test_hta_on_a_trimmed_real_gpu_trace(gpu_trace, tmp_path):
    trimmed, _ = torch_trace.trim(gpu_trace, GPU_RANGE, max_events=1000)
    (tmp_path / "trace").mkdir()
    torch_trace.write(tmp_path / "trace" / "trace.json", torch_trace.add_rank(trimmed))
    result = hta_summary.summarize(tmp_path / "trace", tmp_path / "hta")
    assert result["status"] == "ok", result
    assert isinstance(result["analyses"]["temporal"], dict) and isinstance(result["analyses"]["kernels"], dict)
    assert 0 <= result["headline"]["idle_pct"] <= 100
    assert (tmp_path / "hta" / "temporal_breakdown.csv").exists() and (tmp_path / "hta" / "hta_summary.json").exists()


def test_hta_on_cpu_trace_is_unavailable_not_a_crash(cpu_sweep, tmp_path):
    _, out = cpu_sweep
    result = hta_summary.summarize(out / "ch1" / "batched_matmul" / "baseline" / "torch" / "trace", tmp_path)
    assert result["status"] == "unavailable" and result["reason"]
    assert json.loads((tmp_path / "hta_summary.json").read_text())["status"] == "unavailable"


def test_without_hta_the_torch_job_says_so_and_runs_no_hta(tmp_path):
    assert isinstance(hta_installed(), bool)
    session = Profiling(_settings(tmp_path, {"torch": Tool("torch", version="torch")}, hta=False))
    result = session.run(_bmm_job("bmm", "optimized", "torch"))
    assert result["status"] == "ok" and result["metrics"]["hta"].startswith("unavailable: HTA is not installed here")
    assert not (tmp_path / "out" / "ch1" / "batched_matmul" / "bmm" / "torch" / "hta").exists()


# --------------------------------------------------------------------------------------- compare
def _results(name: str, ms: float) -> dict:
    return {"run": {"device": {"name": name}}, "examples": [
        {"schema": 2, "id": "ch1/x", "variants": [{"name": "baseline", "role": "baseline", "verified": True,
                                                   "median_ms": ms}]}]}


def test_compare_runs_results_and_summaries(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(_results("H100", 2.0)))
    (tmp_path / "b" / "results.json").write_text(json.dumps(_results("H200", 1.0)))
    assert compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "| ch1/x | baseline | median_ms | 2 | 1 | 0.5 |" in out and "| H100 | H200 |" in out
    summary = {"run": {"device": {"name": "cpu"}}, "examples": [{"id": "ch1/x", "variants": [
        {"name": "baseline", "profilers": {"ncu": {"metrics": {"dram_pct": 50.0, "top_kernel": "k"}}}}]}]}
    assert compare_runs.flatten(summary) == {("ch1/x", "baseline", "ncu.dram_pct"): 50.0}
    assert compare_runs.main([str(tmp_path / "a"), str(tmp_path / "missing")]) == 2


def test_nsys_that_cannot_import_its_stream_is_unavailable_before_any_job(tmp_path):
    """An nsys that records a .qdstrm but cannot turn it into a report is found out on a one-kernel probe."""
    _script(tmp_path / "nsys", "import sys\n"
            "if '--version' in sys.argv: print('NVIDIA Nsight Systems version 2025.3.1'); sys.exit(0)\n"
            "print('Importer error status: An unknown error occurred.'); sys.exit(1)\n")
    tools = check_tools(["nsys"], "cuda", env={"PATH": str(tmp_path)}, globs={})
    assert "wrote no report" in tools["nsys"].reason and "Importer error" in tools["nsys"].reason


def test_nsys_that_writes_a_report_stays_available(tmp_path):
    _script(tmp_path / "nsys", "import sys, pathlib\n"
            "if '--version' in sys.argv: print('NVIDIA Nsight Systems version 2025.3.1'); sys.exit(0)\n"
            "out = sys.argv[sys.argv.index('-o') + 1]; pathlib.Path(out + '.nsys-rep').write_text('report')\n")
    tools = check_tools(["nsys"], "cuda", env={"PATH": str(tmp_path)}, globs={})
    assert tools["nsys"].available, tools["nsys"].reason
