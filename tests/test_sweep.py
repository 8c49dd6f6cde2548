"""The sweep end to end, on deliberately faulty examples written to a temporary folder."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from harness import expectations, targets
from harness.device import REPO_ROOT, arch_key, gpu_slug
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
    "stateful": "def fast(x):\n    x['acc'] += x['x'] * 2  # never reset between calls\n    return x['acc']",
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
    results = run_sweep(refs, device=torch.device("cpu"), size="tiny", out_dir=out, timeout=10, progress=lambda s: None)
    return {r["title"] or r["id"].split("/")[1]: r for r in results["examples"]}, out


def by_name(sweep, kind):
    return next(r for r in sweep[0].values() if r["id"].endswith("/" + kind))


def test_good_variant_verifies_and_gets_a_speedup(sweep):
    r = by_name(sweep, "good")
    assert r["status"] == "ok" and r["speedup"] > 0
    assert [v["role"] for v in r["variants"]] == ["baseline", "optimized"]
    assert all(v["verified"] and v["median_ms"] > 0 and v["gbps"] > 0 for v in r["variants"])


@pytest.mark.parametrize("kind", ["wrong", "nan", "unwritten", "stale", "stateful", "wrong_once_timed"])
def test_bad_outputs_fail_verification_and_get_no_speedup(sweep, kind):
    r = by_name(sweep, kind)
    assert r["status"] == "failed" and "not verified" in r["reason"]
    assert r["speedup"] is None
    assert r["variants"][1]["median_ms"] is None


def test_state_is_caught_by_a_second_call_and_after_timing(sweep):
    assert "second call on the same inputs" in by_name(sweep, "stateful")["reason"]
    assert "after timing" in by_name(sweep, "wrong_once_timed")["reason"]


def test_an_optimized_variant_may_not_take_the_baselines_name():
    from harness import Example
    f = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match="distinct: baseline"):
        Example(title="t", setup=None, baseline=f, optimized={"baseline": f})
    with pytest.raises(ValueError, match="distinct: eager"):
        Example(title="t", setup=None, baseline=f, optimized={"eager": f}, references={"eager": f})


def test_crash_hang_and_exceptions_are_contained(sweep):
    assert by_name(sweep, "crash")["status"] == "failed" and "code 3" in by_name(sweep, "crash")["reason"]
    assert by_name(sweep, "hang")["status"] == "timeout"
    raises = by_name(sweep, "raises")
    assert raises["status"] == "failed" and "fast not verified: raised RuntimeError" in raises["reason"]
    assert raises["variants"][0]["median_ms"] > 0  # the baseline is still timed


def test_targets_use_the_architecture_value_or_default(sweep):
    t = {t["metric"]: t for t in by_name(sweep, "good")["targets"]}
    assert t["speedup"]["met"] is None  # on the CPU a GPU's default does not apply
    assert t["gbps"]["met"] is None and t["gbps"]["source"] == "no target for this GPU"


def test_results_json_schema_is_complete(sweep):
    data = json.loads((sweep[1] / "results.json").read_text())
    run = data["run"]
    for key in ("started_at", "git_sha", "host", "device", "versions", "size"):
        assert key in run
    assert set(run["versions"]) >= {"python", "torch", "triton"}
    for ex in data["examples"]:
        for key in ("id", "chapter", "title", "status", "reason", "variants", "speedup", "targets"):
            assert key in ex, key
        assert ex["status"] in ("ok", "failed", "skipped", "timeout")
        for v in ex["variants"]:
            for key in ("name", "role", "median_ms", "iqr_ms", "samples", "verified", "max_abs_err", "gbps", "tflops"):
                assert key in v, key
    assert (sweep[1] / "summary.md").read_text().startswith("# Results")


def test_targets_evaluate_per_architecture():
    spec = {"speedup": {"op": ">=", "B200": 31.0, "H200": 5.0, "default": 2.0, "source": "book"}}
    result = {"speedup": 6.0, "variants": []}
    assert targets.evaluate(spec, result, "H200")[0]["met"] is True
    assert targets.evaluate(spec, result, "B200")[0]["met"] is False
    assert targets.evaluate(spec, {"speedup": None, "variants": []}, "H200")[0]["met"] is None
    assert targets.evaluate(spec, result, "A100")[0]["value"] == 2.0
    assert targets.evaluate(spec, result, "cpu")[0]["met"] is None
    rows = {"variants": [{"name": "b", "role": "baseline", "verified": True, "median_ms": 6.0},
                         {"name": "kernel", "role": "optimized", "verified": True, "median_ms": 2.0},
                         {"name": "torch", "role": "optimized", "verified": True, "median_ms": 1.0}], "speedup": 6.0}
    named = {"speedup": {"op": ">=", "default": 2.0, "variant": "kernel"}}
    assert targets.evaluate(named, rows, "H100")[0]["measured"] == 3.0
    assert targets.evaluate({"speedup": {**spec["speedup"], "cpu": 1.0}}, result, "cpu")[0]["met"] is True


def test_bad_targets_file_is_an_error(tmp_path):
    (tmp_path / "targets.toml").write_text('[x.speedupp]\nop = ">="\n')
    with pytest.raises(targets.TargetsError, match="not a known metric"):
        targets.load_targets(tmp_path)


def test_regression_check_against_recorded_expectations(tmp_path):
    run = {"started_at": "t", "git_sha": "abc", "host": "h", "versions": {}, "device": {"name": "NVIDIA H200"}}
    base = {"size": "full", "status": "ok", "speedup": 4.0,
            "variants": [{"name": "b", "role": "baseline", "verified": True, "median_ms": 4.0},
                         {"name": "o", "role": "optimized", "verified": True, "median_ms": 1.0}]}
    path = expectations.expectations_path(tmp_path, gpu_slug(run["device"]["name"]))
    expectations.record(path, "ch1/x", base, run)
    recorded = expectations.load(path)["examples"]["ch1/x"]
    assert recorded["provenance"]["git_sha"] == "abc" and path.name == "h200.json"
    assert expectations.regressions(base, recorded) == []
    slower = {**base, "speedup": 3.0, "variants": [base["variants"][0], {**base["variants"][1], "median_ms": 1.3}]}
    assert len(expectations.regressions(slower, recorded)) == 2
    assert expectations.regressions({**slower, "size": "small"}, recorded) == []  # other size: not comparable


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


def test_cli_usage_errors_exit_2_with_one_line():
    for args in (["run", "ch99"], ["list", "ch1/nope"], ["run", "--size", "huge"], ["frobnicate"]):
        p = cli(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_cli_list_and_run_ch1_on_cpu(tmp_path):
    p = cli("list", "ch1")
    assert p.returncode == 0 and "ch1/pinned_memory" in p.stdout
    p = cli("run", "ch1", "--device", "cpu", "--size", "tiny", "--out", str(tmp_path))
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
def test_a_bad_file_is_a_usage_error_before_anything_runs(tmp_path, bad):
    name, text, message = bad
    path = write_example(tmp_path, "good")
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_text(text)
    p = cli("run", str(path), "--device", "cpu", "--out", str(tmp_path / "out"))
    assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_an_unwritable_out_is_a_usage_error(tmp_path):
    (tmp_path / "afile").write_text("")
    p = cli("run", "ch1/batched_matmul", "--device", "cpu", "--out", str(tmp_path / "afile"))
    assert p.returncode == 2 and "cannot write results" in p.stderr


def test_cli_exit_1_when_an_example_fails(tmp_path):
    path = write_example(tmp_path, "wrong")
    p = cli("run", str(path), "--device", "cpu", "--out", str(tmp_path / "out"))
    assert p.returncode == 1 and "failed" in p.stdout
