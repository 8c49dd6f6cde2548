"""The sweep end to end, on deliberately faulty examples written to a temporary folder."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import expectations, targets
from harness.device import REPO_ROOT, arch_key, gpu_slug
from harness.result import ExampleResult, RunOptions, TargetCheck, VariantResult
from harness.sweep import UsageError, resolve, run_sweep

HEADER = """
import os, time, torch
from harness import Example, Requires, main

def setup(size, device, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(4096, generator=g), "out": torch.empty(4096), "acc": torch.zeros(4096)}

def baseline(x):
    return x["x"] * 2
"""

OPTIMIZED = {
    "good": "def fast(x):\n    return x['x'] + x['x']",
    "wrong": "def fast(x):\n    return x['x'] * 2.001",
    "nan": "def fast(x):\n    y = x['x'] * 2\n    y[5] = float('nan')\n    return y",
    "unwritten": "def fast(x):\n    return x['out']",
    "stale": "_last = []\ndef fast(x):\n    if not _last:\n        _last.append(x['x'] * 2)\n    return _last[0]",
    "stateful": "_acc = [0]\ndef fast(x):\n    _acc[0] = _acc[0] + x['x'] * 2  # never reset between calls\n    return _acc[0]",
    "wrong_once_timed": "_calls = [0]\ndef fast(x):\n    _calls[0] += 1\n    return x['x'] * 2 if _calls[0] <= 20 else x['x']",
    "crash": "def fast(x):\n    os._exit(3)",
    "hang": "def fast(x):\n    time.sleep(120)",
    "raises": "def fast(x):\n    raise RuntimeError('CUDA error: an illegal memory access was encountered')",
}


def write_example(folder: Path, kind: str, extra: str = "") -> Path:
    path = folder / f"{kind}.py"
    body = HEADER + OPTIMIZED[kind] + extra + f'\n\nEXAMPLE = Example(title="{kind}", setup=setup, baseline=baseline, ' \
        'optimized={"fast": fast}, bytes_moved=lambda x: 8 * x["x"].numel())\n'
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One sweep over every faulty kind, shared by the tests below (each example is its own process)."""
    folder = tmp_path_factory.mktemp("examples")
    for kind in OPTIMIZED:
        write_example(folder, kind)
    (folder / "targets.toml").write_text(textwrap.dedent("""
        [good.speedup]
        op = ">="
        H200 = 1000.0
        default = 0.01
        source = "test"
        [good.gbps]
        op = ">="
        B200 = 1.0
    """))
    out = tmp_path_factory.mktemp("out")
    refs = resolve([str(folder / f"{k}.py") for k in OPTIMIZED])
    opts = RunOptions(device="cpu", size="tiny", max_time_s=0.2)
    results = run_sweep(refs, opts=opts, out_dir=out, timeout=20, progress=lambda s: None)
    return {r["id"].split("/")[1]: ExampleResult.from_dict(r) for r in results["examples"]}, out


def by_name(sweep, kind) -> ExampleResult:
    return sweep[0][kind]


def test_good_variant_verifies_and_gets_a_speedup(sweep):
    r = by_name(sweep, "good")
    assert r.status == "ok" and r.speedup() > 0
    assert [v.role for v in r.variants] == ["baseline", "optimized"]
    assert all(v.verified and v.median_ms > 0 and v.gbps > 0 for v in r.variants)
    fast = r.variant("fast")
    assert fast.paired_speedup_p25 <= fast.paired_speedup <= fast.paired_speedup_p75
    assert len(fast.samples_ms) == fast.samples and fast.timed_checks >= 1
    assert r.environment["cpu"]["threads"] == 1 and "load_before" in r.environment


@pytest.mark.parametrize("kind", ["wrong", "nan", "unwritten", "stale", "stateful", "wrong_once_timed"])
def test_bad_outputs_fail_verification_and_get_no_speedup(sweep, kind):
    r = by_name(sweep, kind)
    assert r.status == "failed" and "not verified" in r.reason
    assert r.speedup() is None
    assert r.variants[1].median_ms is None


def test_state_is_caught_by_a_second_call_and_while_timed(sweep):
    assert "second call on the same inputs" in by_name(sweep, "stateful").reason
    assert "a timed call" in by_name(sweep, "wrong_once_timed").reason


def test_an_optimized_variant_may_not_take_the_baselines_name():
    from harness import Example
    f = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match="distinct: baseline"):
        Example(title="t", setup=None, baseline=f, optimized={"baseline": f})
    with pytest.raises(ValueError, match="distinct: eager"):
        Example(title="t", setup=None, baseline=f, optimized={"eager": f}, references={"eager": f})


def test_crash_hang_and_exceptions_are_contained(sweep):
    assert by_name(sweep, "crash").status == "failed" and "code 3" in by_name(sweep, "crash").reason
    assert by_name(sweep, "hang").status == "timeout"
    raises = by_name(sweep, "raises")
    assert raises.status == "failed" and "fast not verified: trial 0: RuntimeError" in raises.reason
    assert raises.variants[0].median_ms > 0  # the baseline is still timed


def test_targets_use_the_architecture_value_or_default(sweep):
    t = {t.metric: t for t in by_name(sweep, "good").targets}
    assert t["speedup"].met is None  # on the CPU a GPU's default does not apply
    assert t["gbps"].met is None and t["gbps"].source == "no target for this machine"


def test_results_json_round_trips_through_the_result_type(sweep):
    data = json.loads((sweep[1] / "results.json").read_text())
    assert data["schema"] == 2 and data["interrupted"] is False
    run = data["run"]
    for key in ("started_at", "git_sha", "host", "device", "versions", "size", "cpu_threads", "load_average"):
        assert key in run
    assert set(run["versions"]) >= {"python", "torch", "triton"}
    for ex in data["examples"]:
        res = ExampleResult.from_dict(ex)
        assert res.to_dict() == ex
        assert res.status in ("ok", "failed", "skipped", "timeout")
    assert (sweep[1] / "summary.md").read_text().startswith("# Results")


def _result(*times: float, roles=("baseline", "optimized", "optimized"), names=("b", "kernel", "torch")) -> ExampleResult:
    return ExampleResult(id="ch1/x", size="full", variants=[
        VariantResult(name=n, role=r, verified=True, median_ms=t) for n, r, t in zip(names, roles, times, strict=True)])


def test_targets_evaluate_per_architecture():
    spec = {"speedup": {"op": ">=", "B200": 31.0, "H200": 5.0, "default": 2.0, "source": "book"}}
    result = _result(6.0, 2.0, 1.0)
    assert targets.evaluate(spec, result, "H200")[0].met is True
    assert targets.evaluate(spec, result, "B200")[0].met is False
    assert targets.evaluate(spec, result, "A100")[0].value == 2.0
    assert targets.evaluate(spec, result, "cpu")[0].met is None
    named = {"speedup": {"op": ">=", "default": 2.0, "variant": "kernel"}}
    assert targets.evaluate(named, result, "H100")[0].measured == 3.0
    assert targets.evaluate({"speedup": {**spec["speedup"], "cpu": 1.0}}, result, "cpu")[0].met is True
    # a stated cause is shown beside a miss, and never beside a claim that was met
    why = {"speedup": {"default": 9.0, "missed_why": "two passes per row"}}
    assert targets.evaluate(why, result, "H200")[0].why == "two passes per row"
    assert targets.evaluate({"speedup": {**why["speedup"], "default": 2.0}}, result, "H200")[0].why in (None, "")


def test_a_claim_that_cannot_be_measured_is_missed_and_a_skipped_variant_is_not_judged():
    unverified = _result(6.0, 2.0, 1.0)
    for v in unverified.variants[1:]:
        v.fail("wrong")
    check = targets.evaluate({"speedup": {"default": 2.0}}, unverified, "H200")[0]
    assert check.met is False and "not verified" in check.why
    nopeak = targets.evaluate({"fraction_of_peak_bandwidth": {"default": 0.8}}, _result(6.0, 2.0, 1.0), "H200")[0]
    assert nopeak.met is False and "peak" in nopeak.why
    skipped = _result(6.0, 2.0, 1.0)
    skipped.variants[1].status, skipped.variants[1].reason = "skipped", "needs sm_90+"
    check = targets.evaluate({"speedup": {"default": 2.0, "variant": "kernel"}}, skipped, "A100")[0]
    assert check.met is None and "needs sm_90+" in check.why


def test_speedup_over_the_reference_is_reported_beside():
    res = _result(6.0, 2.0, 1.0, roles=("baseline", "optimized", "reference"))
    assert res.speedup() == 3.0 and res.speedup(over="reference") == 0.5
    assert targets.evaluate({"speedup_vs_reference": {"default": 1.0}}, res, "H200")[0].met is False


def test_unknown_names_in_targets_are_a_usage_error(tmp_path):
    write_example(tmp_path, "good")
    (tmp_path / "targets.toml").write_text('[goood.speedup]\ndefault = 1.0\nsource = "x"\n')
    p = cli("run", str(tmp_path / "good.py"), "--device", "cpu", "--out", str(tmp_path / "out"))
    assert p.returncode == 2 and "goood" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    (tmp_path / "targets.toml").write_text('[good.speedup]\ndefault = 1.0\nvariant = "fastt"\nsource = "x"\n')
    p = cli("run", str(tmp_path / "good.py"), "--device", "cpu", "--out", str(tmp_path / "out"))
    assert p.returncode == 2 and "fastt" in p.stderr


def test_bad_targets_file_is_an_error(tmp_path):
    (tmp_path / "targets.toml").write_text('[x.speedupp]\nop = ">="\n')
    with pytest.raises(targets.TargetsError, match="not a known metric"):
        targets.load_targets(tmp_path)


RUN = {"started_at": "t", "git_sha": "abc", "host": "h", "versions": {}, "device": {"name": "NVIDIA H200"}}


def _recorded(tmp_path, res: ExampleResult, **kw) -> tuple[str | None, dict]:
    path = expectations.expectations_path(tmp_path, gpu_slug(RUN["device"]["name"]))
    why = expectations.record(path, res, RUN, **kw)
    return why, expectations.load(path)["examples"].get("ch1/x")


def test_regression_check_against_recorded_expectations(tmp_path):
    base = _result(4.0, 1.0, names=("b", "o"), roles=("baseline", "optimized"))
    why, recorded = _recorded(tmp_path, base)
    assert why is None and recorded["provenance"]["git_sha"] == "abc"
    assert expectations.regressions(base, recorded) == []
    slower = _result(4.0, 1.3, names=("b", "o"), roles=("baseline", "optimized"))
    assert len(expectations.regressions(slower, recorded)) == 2      # the variant, and the headline speedup
    slower_baseline = _result(5.0, 1.0, names=("b", "o"), roles=("baseline", "optimized"))
    assert any(r.startswith("b ") for r in expectations.regressions(slower_baseline, recorded))
    other = _result(4.0, 1.3, names=("b", "o"), roles=("baseline", "optimized"))
    other.size = "small"
    assert expectations.regressions(other, recorded) == []  # other size: not comparable


def test_record_refuses_a_run_that_is_not_clean_and_keeps_the_best(tmp_path):
    base = _result(4.0, 1.0, names=("b", "o"), roles=("baseline", "optimized"))
    _recorded(tmp_path, base)
    slower = _result(4.0, 1.3, names=("b", "o"), roles=("baseline", "optimized"))
    slower.regressions = expectations.regressions(slower, _recorded(tmp_path, base)[1])
    why, entry = _recorded(tmp_path, slower)
    assert why.startswith("regression") and entry["best"]["variants"]["o"] == 1.0
    # Many runs each a little slower than the last cannot walk the figures down: each is held to the best.
    drift = 1.0
    for _ in range(6):
        drift *= 1.04
        run = _result(4.0, drift, names=("b", "o"), roles=("baseline", "optimized"))
        run.regressions = expectations.regressions(run, entry)
        why, entry = _recorded(tmp_path, run)
    assert entry["best"]["variants"]["o"] == 1.0 and why is not None
    noisy = _result(4.0, 1.0, names=("b", "o"), roles=("baseline", "optimized"))
    noisy.variants[1].converged = False
    assert "noisy" in _recorded(tmp_path, noisy)[0]
    forced, entry = _recorded(tmp_path, slower, force=True)
    assert forced is None and entry["history"][-1]["forced"] is True
    # A missed target is a measured fact, recorded like any other (the chapter's table shows it as missed).
    missed = _result(4.0, 1.0, names=("b", "o"), roles=("baseline", "optimized"))
    missed.targets = [TargetCheck("speedup", ">=", 10.0, 4.0, False, "a claim this run does not reach")]
    why, entry = _recorded(tmp_path, missed)
    assert why is None and entry["result"]["targets"][0]["met"] is False


def test_arch_and_slug_from_device_names():
    assert arch_key("NVIDIA H100 80GB HBM3") == "H100"
    assert arch_key("NVIDIA B200") == "B200" and arch_key("Tesla T4") == "default"
    assert arch_key("NVIDIA GB200") == "GB200"
    assert gpu_slug("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"


def test_resolve_names_what_exists():
    assert any(r.id == "ch1/batched_matmul" for r in resolve(["ch1"]))
    assert [r.id for r in resolve(["ch1/batched_matmul"])] == ["ch1/batched_matmul"]
    with pytest.raises(UsageError, match="unknown chapter 'ch99'.*ch1"):
        resolve(["ch99"])
    with pytest.raises(UsageError, match="no example 'nope' in ch1; it has:.*batched_matmul"):
        resolve(["ch1/nope"])


def cli(*args, cwd=REPO_ROOT):
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def cli_here(capsys, *args) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` in this process (the examples still run in children of their own): the same
    exit code and streams without paying a Python and torch start-up per test."""
    from harness.cli import main
    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as exc:   # argparse's own errors
        rc = exc.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out.out, out.err)


@pytest.mark.parametrize("args", [["run", "ch99"], ["list", "ch1/nope"], ["run", "--size", "huge"], ["frobnicate"],
                                  ["run", "ch1", "--timeout", "-1"], ["run", "ch1", "--timeout", "0"],
                                  ["run", "ch1", "--cpu-threads", "0"]])
def test_cli_usage_errors_exit_2_with_one_line(args, capsys):
    from harness.cli import main
    try:
        rc = main(args)
    except SystemExit as exc:   # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, (args, err)
    assert len(err.strip().splitlines()) == 1, err


def test_cli_list_and_run_ch1_on_cpu(tmp_path):
    p = cli("list", "ch1")
    assert p.returncode == 0 and "ch1/pinned_memory" in p.stdout
    p = cli("run", "ch1", "--device", "cpu", "--size", "tiny", "--out", str(tmp_path), "--max-time", "0.2")
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    status = {e["id"]: e for e in data["examples"]}
    assert status["ch1/pinned_memory"]["status"] == "skipped" and status["ch1/pinned_memory"]["reason"] == "needs CUDA"
    assert all(e["status"] == "ok" for k, e in status.items() if k != "ch1/pinned_memory")


@pytest.mark.parametrize("bad", [
    ("targets.toml", "[good]\nspeedup = 5\n", "must be a table"),
    ("targets.toml", '[good.speedup]\nop = ">="\ncpu = "2"\n', "must be a number"),
    ("targets.toml", "[good.speedup\n", "targets.toml"),
    ("expectations/cpu.json", "{bad", "not readable JSON"),
    ("expectations/cpu.json", "[]", "not an expectations file"),
])
def test_a_bad_file_is_a_usage_error_before_anything_runs(tmp_path, bad, capsys):
    name, text, message = bad
    path = write_example(tmp_path, "good")
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_text(text)
    p = cli_here(capsys, "run", str(path), "--device", "cpu", "--out", str(tmp_path / "out"))
    assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_an_unwritable_out_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    p = cli_here(capsys, "run", "ch1/batched_matmul", "--device", "cpu", "--out", str(tmp_path / "afile"))
    assert p.returncode == 2 and "cannot write results" in p.stderr


def test_cli_exit_1_when_an_example_fails(tmp_path, capsys):
    path = write_example(tmp_path, "wrong")
    p = cli_here(capsys, "run", str(path), "--device", "cpu", "--out", str(tmp_path / "out"))
    assert p.returncode == 1 and "failed" in p.stdout


def test_a_file_that_does_not_parse_is_listed_and_fails_with_its_syntax_error(tmp_path, capsys):
    path = tmp_path / "broken.py"
    path.write_text("def setup(:\n")
    assert [r.id for r in resolve([str(path)])] == [f"{tmp_path.name}/broken"]
    p = cli_here(capsys, "run", str(path), "--device", "cpu", "--out", str(tmp_path / "out"))
    assert p.returncode == 1
    res = json.loads((tmp_path / "out" / "results.json").read_text())["examples"][0]
    assert res["status"] == "failed" and "SyntaxError" in res["reason"]


def test_chapter_20_points_to_its_own_commands(capsys):
    p = cli_here(capsys, "list", "ch20")
    assert p.returncode == 2 and "python -m ch20.verify" in p.stderr


def test_ctrl_c_ends_the_example_process_and_keeps_finished_results(tmp_path):
    import os
    import signal
    import time
    write_example(tmp_path, "good")
    hang = tmp_path / "zz_hang.py"
    hang.write_text((tmp_path / "good.py").read_text().replace("return x['x'] + x['x']",
                    "open(os.environ['PIDFILE'], 'w').write(str(os.getpid())); time.sleep(300)"))
    pidfile = tmp_path / "child.pid"
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(tmp_path / "good.py"), str(hang),
                             "--device", "cpu", "--out", str(out), "--max-time", "0.2"], cwd=REPO_ROOT,
                            env={**os.environ, "PIDFILE": str(pidfile)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            # A shell without job control starts background jobs with SIGINT ignored, and Python
                            # keeps an ignored SIGINT ignored: give the sweep the default, as a terminal would.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not pidfile.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert pidfile.exists(), proc.communicate()
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{child}") or "zombie" in open(f"/proc/{child}/status").read().lower()
    data = json.loads((out / "results.json").read_text())
    assert data["interrupted"] is True and [e["id"].split("/")[1] for e in data["examples"]] == ["good"]
    assert "INTERRUPTED" in (out / "summary.md").read_text()
