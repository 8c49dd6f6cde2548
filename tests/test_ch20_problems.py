"""Chapter 20's problem set and search templates, checked in this process (they are our own code)."""
import ast
import importlib.util
from pathlib import Path

import pytest
import torch

from ch20.evaluate import evaluate, fast_p
from ch20.generators.templates import BY_FAMILY, template_for
from ch20.problem import DISTRIBUTIONS, load_problem

REPO = Path(__file__).resolve().parent.parent
PROBLEMS = sorted((REPO / "ch20/problems").glob("*.py"))


def test_problem_set_covers_the_families():
    assert len(PROBLEMS) >= 12
    families = {load_problem(p).family for p in PROBLEMS}
    for needed in ("elementwise", "reduction", "softmax", "layernorm", "activation", "activation_fusion", "matmul",
                   "matmul_bias_relu", "attention"):
        assert needed in families


@pytest.mark.parametrize("path", PROBLEMS, ids=[p.stem for p in PROBLEMS])
def test_problem_runs_on_every_declared_distribution(path):
    problem = load_problem(path)
    assert set(problem.distributions) <= set(DISTRIBUTIONS)
    assert "full" in problem.module.SHAPES and "tiny" in problem.module.SHAPES
    torch.manual_seed(0)
    model = problem.module.Model(*problem.init_inputs("tiny"))
    for dist in problem.distributions:
        inputs = problem.make_inputs("tiny", 7, dist)
        assert problem.make_inputs("tiny", 7, dist)[0].equal(inputs[0])          # the seed decides the draw
        out = model(*inputs)
        for t in out if isinstance(out, tuple) else (out,):
            assert torch.isfinite(t).all(), dist
            assert t.abs().sum() > 0                                             # never all zeros


def _load(source: str, tmp_path: Path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("problem_name", ["matmul", "linear_bias_relu", "layernorm"])
def test_templates_render_correct_kernels(problem_name, tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")   # read when @triton.jit decorates, i.e. at load below
    problem = load_problem(REPO / f"ch20/problems/{problem_name}.py")
    template = template_for(problem.family)
    params = dict(template.PLAIN)
    params.update({k: v[0] for k, v in template.space("cpu").items() if k.startswith("block")})
    module = _load(template.render(params, problem), tmp_path, f"cand_{problem_name}")
    init = problem.init_inputs("tiny")
    torch.manual_seed(3)
    ref = problem.module.Model(*init)
    torch.manual_seed(3)
    new = module.ModelNew(*init)
    inputs = problem.make_inputs("tiny", 11, problem.distributions[-1])
    torch.testing.assert_close(new(*inputs), ref(*inputs), rtol=1e-4, atol=1e-4)


def test_every_template_renders_valid_python_for_every_choice():
    for family, template in BY_FAMILY.items():
        problem = next(load_problem(p) for p in PROBLEMS if load_problem(p).family == family)
        for device in ("cpu", "cuda"):
            for knob, choices in template.space(device).items():
                for choice in choices:
                    ast.parse(template.render({**template.PLAIN, knob: choice}, problem))


def test_fast_p_counts_failures_in_the_denominator():
    rows = [{"correct": True, "speedup": 2.5}, {"correct": True, "speedup": 1.2}, {"correct": True, "speedup": 0.8},
            {"correct": False, "speedup": None}]
    assert fast_p(rows) == {"fast_0": 0.75, "fast_1": 0.5, "fast_1.5": 0.25, "fast_2": 0.25}
    assert fast_p([]) == {"fast_0": 0.0, "fast_1": 0.0, "fast_1.5": 0.0, "fast_2": 0.0}


def test_evaluate_end_to_end(tmp_path):
    problems, candidates = tmp_path / "problems", tmp_path / "candidates"
    problems.mkdir()
    candidates.mkdir()
    for name in ("softmax", "gelu"):
        (problems / f"{name}.py").write_text((REPO / f"ch20/problems/{name}.py").read_text())
    (candidates / "softmax.py").write_text((REPO / "tests/ch20_candidates/softmax_good.py").read_text())
    result = evaluate(problems, candidates, device="cpu", trials=2, log=lambda *a: None)
    rows = {r["problem"]: r for r in result["rows"]}
    assert rows["softmax"]["correct"] and rows["gelu"]["reason"] == "no candidate"
    assert result["scores"]["fast_0"] == 0.5
