"""Chapter 20, the rest: a search family for every problem, fast_p over the set, a GRPO-trained policy,
AlphaTensor decompositions, the scaling calculator and cluster-telemetry anomalies. CPU only, tiny sizes."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from ch20.generators.templates import template_for
from ch20.problem import load_problem

REPO = Path(__file__).resolve().parent.parent
PROBLEMS = sorted((REPO / "ch20/problems").glob("*.py"))


def _cheap(template) -> dict:
    """The plain configuration with the CPU's smallest blocks: the interpreter's cost grows with them."""
    return {**template.PLAIN, **{k: v[0] for k, v in template.space("cpu").items() if k.startswith("block")}}


@pytest.mark.parametrize("path", PROBLEMS, ids=[p.stem for p in PROBLEMS])
def test_every_problem_has_a_family_whose_kernel_is_correct(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")   # read when @triton.jit decorates, i.e. at load below
    problem = load_problem(path)
    template = template_for(problem.family)
    params = _cheap(template)
    assert template.valid(params, "cpu") and template.valid(template.PLAIN, "cuda")
    source = tmp_path / f"cand_{problem.name}.py"
    source.write_text(template.render(params, problem))
    spec = importlib.util.spec_from_file_location(f"cand_{problem.name}", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    init = problem.init_inputs("tiny")
    torch.manual_seed(3)
    ref = problem.module.Model(*init)
    torch.manual_seed(3)
    new = module.ModelNew(*init)
    for dist in problem.distributions:                     # every declared edge case, as the verifier draws them
        inputs = problem.make_inputs("tiny", 11, dist)
        torch.testing.assert_close(new(*inputs), ref(*inputs), rtol=1e-4, atol=1e-4, msg=lambda m, d=dist: f"{d}: {m}")


def test_a_new_family_passes_the_verifier(tmp_path):
    from ch20.verify import verify
    problem = load_problem(REPO / "ch20/problems/gelu.py")
    template = template_for(problem.family)
    kernel = tmp_path / "gelu_kernel.py"
    kernel.write_text(template.render(_cheap(template), problem))
    v = verify(problem, kernel, device="cpu", trials=2, rounds=2, min_speedup=0.0)
    assert v["correct"], v["reason"]


def test_fast_p_against_both_baselines_and_the_readme_table(tmp_path):
    from ch20.evaluate import markdown, merge
    part1 = {"rows": [{"problem": "a", "family": "softmax", "correct": True, "speedup": 2.0, "reason": "",
                       "vs_compile": {"correct": True, "speedup": 0.5}},
                      {"problem": "b", "correct": False, "speedup": None, "reason": "wrong values",
                       "vs_compile": {"correct": False, "speedup": None, "reason": "no correct kernel to compare"}}]}
    part2 = {"rows": [{"problem": "c", "correct": True, "speedup": 8.0, "reason": "",
                       "vs_compile": {"correct": True, "speedup": 1.6}}], "search": {"budget": 2}}
    result = merge([part1, part2])
    eager, compiled = result["by_baseline"]["eager"], result["by_baseline"]["torch_compile"]
    assert result["problems"] == 3 and eager["fast_0"] == pytest.approx(2 / 3) and eager["fast_2"] == pytest.approx(1 / 3)
    assert eager["geomean_speedup_correct"] == pytest.approx(4.0)          # sqrt(2 * 8)
    assert compiled["fast_1"] == pytest.approx(1 / 3) and compiled["geomean_speedup_correct"] == pytest.approx(
        (0.5 * 1.6) ** 0.5)
    text = markdown(result)
    assert "| a | softmax |" in text and "2x | 0.5x |" in text and "fail: wrong values" in text
    assert "against torch.compile: fast_0 = 0.67, fast_1 = 0.33" in text
    from ch20.evaluate import README_BEGIN, README_END, main
    (tmp_path / "p1.json").write_text(json.dumps(part1))
    (tmp_path / "p2.json").write_text(json.dumps(part2))
    (tmp_path / "README.md").write_text(f"# T\n{README_BEGIN}\nNot yet measured\n{README_END}\nafter\n")
    assert main(["--merge", str(tmp_path / "p1.json"), str(tmp_path / "p2.json"), "--readme",
                 str(tmp_path / "README.md")]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert "Not yet measured" not in readme and "| c | - | - | - | - |" in readme and readme.endswith("after\n")


def test_evaluate_usage_errors(tmp_path, capsys):
    from ch20.evaluate import main
    with pytest.raises(SystemExit) as exc:
        main(["--problems", str(REPO / "ch20/problems")])
    assert exc.value.code == 2 and "exactly one of" in capsys.readouterr().err
    assert main(["--problems", str(REPO / "ch20/problems"), "--search", str(tmp_path), "--only", "nope",
                 "--device", "cpu"]) == 2
    assert "--only names no problem" in capsys.readouterr().err


def test_grpo_policy_learns_and_transfers_on_the_stand_in_reward(tmp_path):
    from ch20 import grpo_policy
    names = ["softmax", "layernorm", "rmsnorm", "gelu", "log_softmax", "bias_gelu"]
    result = grpo_policy.run("synthetic", steps=12, group=6, budget=3, names=names, repeats=8, log=lambda *a: None)
    curve = result["curve"]
    first, last = sum(c["mean_reward"] for c in curve[:3]) / 3, sum(c["mean_reward"] for c in curve[-3:]) / 3
    assert last > first + 0.2                                   # the groups' reward rises
    assert sorted(result["held_out_problems"]) == ["bias_gelu", "log_softmax"]
    s = result["summary_mean_best_reward"]
    assert s["grpo_policy"]["held_out"] > s["random"]["held_out"]  # transfer, at an equal budget
    assert s["evolutionary"]["held_out"] is not None
    again = grpo_policy.run("synthetic", steps=4, group=6, budget=3, names=names, repeats=1, log=lambda *a: None)
    assert again["curve"] == curve[:4]                          # seeded: the same steps twice
    grpo_policy.plot(curve, tmp_path / "curve.png", "test")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_grpo_measured_table_checks_and_times_each_configuration(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    from ch20 import grpo_policy
    table = grpo_policy.measured_table(["gelu"], size="tiny", max_configs=2, device="cpu", log=lambda *a: None)
    rows = list(table["problems"]["gelu"].values())
    assert len(rows) == 2 and rows[0]["params"] == {"block": 1024, "num_warps": 4}   # the plain one first
    assert all(r["verdict"]["correct"] and r["verdict"]["speedup"] > 0 for r in rows), rows


def test_strassen_is_an_exact_rank_7_decomposition_and_a_corrupted_one_is_caught():
    from ch20 import alphatensor as at
    s = at.strassen()
    assert s.rank == 7 < at.trivial(2, 2, 2).rank == 8
    assert at.is_exact(s) and at.is_exact(at.trivial(2, 3, 4))
    s2 = at.kron(s, s)
    assert (s2.n, s2.m, s2.p, s2.rank) == (4, 4, 4, 49) and at.is_exact(s2)
    g = torch.Generator().manual_seed(5)
    a, b = torch.randint(-9, 10, (8, 6), generator=g), torch.randint(-9, 10, (6, 10), generator=g)
    assert torch.equal(at.apply(s, a, b), a @ b)                               # exact in integers
    a, b = torch.randint(-9, 10, (8, 8), generator=g), torch.randint(-9, 10, (8, 8), generator=g)
    assert torch.equal(at.apply(s2, a, b), a @ b)
    x, y = torch.randn(64, 64, dtype=torch.float64), torch.randn(64, 64, dtype=torch.float64)
    torch.testing.assert_close(at.apply(s, x, y), x @ y)
    for factor in ("u", "v", "w"):                                             # any single entry, any factor
        for row, col in ((0, 0), (6, 3), (3, 1)):
            bad = at.corrupt(s, factor, row, col)
            assert not at.is_exact(bad)
            assert not torch.equal(at.apply(bad, a, b), a @ b)                 # and a detectably wrong product
    assert all(c["exact"] == c["product_equals_matmul"] for c in at.checks())
    with pytest.raises(ValueError, match="does not split"):
        at.apply(s, torch.zeros(3, 4), torch.zeros(4, 4))


def test_strassen_error_growth_is_measured():
    from ch20.alphatensor import time_gemm
    row = time_gemm([128], dtype=torch.bfloat16, device="cpu")[0]
    assert row["strassen_1_level"]["rel_l2_err"] > row["torch_matmul"]["rel_l2_err"] > 0   # bf16 rounding, grown
    assert row["strassen_1_level"]["rel_l2_err"] < 0.05 and row["strassen_speedup_vs_matmul"] > 0


def test_scaling_calculator_reproduces_the_books_figures(tmp_path, capsys):
    from ch20 import scaling as sc
    assert sc.training_flops(175e9, 300e9) == pytest.approx(3.15e23)            # GPT-3: the "3e23"
    assert sc.tokens_for(2e28, 100e12) == pytest.approx(3.333e13, rel=1e-3)     # 100T parameters at 2e28
    # 2e28 FLOPs on H200 (989.4 TFLOP/s bf16 dense) at 40% MFU: 100K GPUs take years, 10M GPUs weeks
    assert sc.days_to_train(2e28, 1e5, "H200", 0.4) / 365 == pytest.approx(16.0, rel=0.01)
    assert sc.days_to_train(2e28, 1e7, "H200", 0.4) == pytest.approx(58.5, rel=0.01)
    assert sc.gpus_needed(2e28, 58.5, "H200", 0.4) == pytest.approx(1e7, rel=0.01)
    m = sc.memory_bytes(175e9)
    assert m["total_without_activations"] == pytest.approx(16 * 175e9)          # 2 + 2 + 12 bytes per parameter
    assert sc.power(1e7, "H200", pue=1.0) == pytest.approx(7e9)                 # 7 GW of boards at 10M GPUs
    assert sc.main(["--json", str(tmp_path / "s.json"), "--png", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "| 100T | 1e+14 | 3.33e+13 | 2e+28 | 16.0 years" in out and "| GPT-3 | 1.75e+11 | 3e+11 | 3.15e+23 |" in out
    assert (tmp_path / "s.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as exc:
        sc.main(["--gpu", "Z100"])
    assert exc.value.code == 2 and "unknown --gpu" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sc.main(["--params", "1e9"])                                           # tokens missing


def test_telemetry_detector_finds_the_injected_faults(tmp_path, capsys):
    import numpy as np

    from ch20 import telemetry_anomalies as ta
    result = ta.evaluate(gpus=12, steps=400, seeds=range(3))
    assert result["precision"] >= 0.9 and result["recall"] == 1.0
    trace, faults = ta.synthetic(12, 400, seed=1)
    assert {f["kind"] for f in faults} == {"throttling", "straggler", "error_burst"}
    assert ta.synthetic(12, 400, seed=1)[1] == faults                              # seeded
    for seed in range(3):                                                        # a healthy cluster: no alarms
        assert ta.detect(ta.synthetic(12, 400, seed, inject=False)[0]) == []
    # one GPU, no peers: a clock drop under load is caught against its own past
    one = {m: np.zeros((1, 300)) for m in ta.METRICS}
    one["power_w"][:] = 650
    one["sm_clock_mhz"][:] = 1900 - 400 * (np.arange(300) >= 200)
    assert [e["kind"] for e in ta.detect(one)] == ["throttling"] and ta.detect(one)[0]["start"] >= 200
    ta.write_csv(trace, tmp_path / "t.csv")
    back = ta.read_csv(tmp_path / "t.csv")
    assert np.allclose(back["sm_clock_mhz"], trace["sm_clock_mhz"]) and ta.detect(back) == ta.detect(trace)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit) as exc:
        ta.main(["--read", str(tmp_path / "bad.csv")])
    assert exc.value.code == 2 and "not a telemetry trace" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("path", PROBLEMS, ids=[p.stem for p in PROBLEMS])
def test_every_family_compiles_and_is_correct_on_the_gpu(path, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from harness.verify import compare, flatten, tolerance_for
    problem = load_problem(path)
    template = template_for(problem.family)
    source = tmp_path / f"gpu_{problem.name}.py"
    source.write_text(template.render(dict(template.PLAIN), problem))
    spec = importlib.util.spec_from_file_location(f"gpu_cand_{problem.name}", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    init, dtype = problem.init_inputs("small"), problem.dtype("small")
    with torch.device("cuda"):
        torch.manual_seed(3)
        ref = problem.module.Model(*init).to(dtype)
        torch.manual_seed(3)
        new = module.ModelNew(*init).to(dtype)
    with torch.no_grad():
        for dist in problem.distributions:
            inputs = problem.make_inputs("small", 11, dist, device="cuda")
            expected = flatten(ref(*inputs))
            result = compare(flatten(new(*inputs)), expected, problem.tolerance or tolerance_for(expected[0].dtype))
            assert result.ok, f"{dist}: {result.reason}"
