"""Chapter 19 on the CPU at tiny sizes: the tuning cache is reused and invalidated, the OOM-surviving step equals
the step that fits, the planner's arithmetic and its memory model, FP8 switching, and each CLI end to end
(shrunk further here: the figures are GPU results, no speed is asserted)."""
import json

import pytest
import torch

from ch13.train_common import make_model, make_optimizer
from ch16 import serving
from ch19 import (
    adaptive_batching,
    bandit_tuner,
    dynamic_precision,
    fp8_training,
    kernel_autotune,
    oom_retry,
    parallelism_planner,
    token_precision,
)


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def counting_candidates(calls):
    def make(name, fn):
        def run(x, w):
            calls[name] = calls.get(name, 0) + 1
            return fn(x, w)
        return run
    return {"cublas": make("cublas", lambda x, w: x @ w.t()),
            "slow": make("slow", lambda x, w: (x.double() @ w.double().t()).to(x.dtype)),
            "wrong": make("wrong", lambda x, w: x @ w.t() + 1)}


def test_tuning_cache_reused_and_invalidated(tmp_path, monkeypatch):
    path, calls = tmp_path / "tuning.json", {}
    x, w = torch.randn(8, 32), torch.randn(16, 32)
    first = kernel_autotune.TuningCache(path, reps=2)
    choice, entry = first.choose("linear", counting_candidates(calls), (x, w))
    assert not entry["hit"] and entry["wrong"] == ["wrong"] and choice != "wrong" and path.exists()
    n = dict(calls)
    again = kernel_autotune.TuningCache(path, reps=2)  # a new process: reads the file, times nothing
    choice2, entry2 = again.choose("linear", counting_candidates(calls), (x, w))
    assert entry2["hit"] and choice2 == choice and calls == n and again.tuned == 0
    # any part of the key changing tunes again: shape, dtype, versions
    for args in [(torch.randn(9, 32), w), (x.double(), w.double())]:
        again.choose("linear", counting_candidates(calls), args)
    monkeypatch.setattr(kernel_autotune, "versions", lambda: {"torch": "0.0", "triton": "0.0"})
    again.choose("linear", counting_candidates(calls), (x, w))
    assert again.tuned == 3 and len(json.loads(path.read_text())) == 4


def test_triton_candidates_match():  # in the interpreter without a GPU, compiled with one
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, w = torch.randn(8, 64, device=dev), torch.randn(48, 64, device=dev)
    cands = kernel_autotune.candidates()
    for name in [kernel_autotune.DEFAULT, "triton_16x64x128_w4_s4"]:
        torch.testing.assert_close(cands[name](x, w), x @ w.t(), rtol=2e-2, atol=2e-2)  # tf32 on a GPU


def test_oom_retry_matches_the_step_that_fits():
    torch.manual_seed(0)
    tokens = torch.randint(0, 256, (8, 17))
    grads = []
    for forced_oom in (False, True):
        model = make_model("tiny", torch.device("cpu"), seed=0)
        opt = make_optimizer(model, "foreach")
        seen = []
        model.register_forward_pre_hook(lambda m, i, seen=seen: seen.append(i[0].shape[0]))
        step = oom_retry.OomRetryStep(model, opt, 8 if forced_oom else 2)
        hook = oom_retry.oom_above(model, 2) if forced_oom else None
        opt.step = lambda model=model: grads.append([p.grad.clone() for p in model.parameters()])  # the gradient
        loss = step.step(tokens[:, :-1], tokens[:, 1:])
        if forced_oom:
            assert [r["failed_micro_batch"] for r in step.retries] == [8, 4] and step.micro_batch == 2
            assert seen[:2] == [8, 4] and seen[2:] == [2] * 4
            hook.remove()
        assert torch.isfinite(loss)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_oom_at_micro_batch_one_reraises():
    model = make_model("tiny", torch.device("cpu"), seed=0)
    oom_retry.oom_above(model, 0)
    step = oom_retry.OomRetryStep(model, make_optimizer(model, "foreach"), 2)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        step.step(torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, 8, dtype=torch.long))


def test_planner_arithmetic():
    cfg = parallelism_planner.MODELS["7B"]
    rows, best = parallelism_planner.planner(cfg, 8, 80, recipe="mixed", seq=4096, micro_batch=1, global_batch=64)
    by = {r["layout"]: r for r in rows}
    dp = by["DP8 x TP1 x PP1"]
    assert dp["params_per_gpu"] == cfg.n_params() and not dp["fits"]      # 16 B/param x 6.7 B > 80 GB
    assert by["DP8(FSDP) x TP1 x PP1"]["states_gib"] < dp["states_gib"] / 7
    assert by["DP1 x TP8 x PP1"]["activations_gib"] == pytest.approx(dp["activations_gib"] / 8)
    assert best is not None and best["fits"]
    assert all(r["dp"] * r["tp"] * r["pp"] == 8 for r in rows)


def test_planner_cli_and_memory_model(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert parallelism_planner.main(["--model-size", "7B", "--gpus", "8", "--check", "--tiny", "--device", "cpu",
                                     "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["pick"] and "| layout |" in capsys.readouterr().out
    for row in report["check"]:  # the formulas were fitted on this model: exact states, activations within 10%
        assert row["states_ratio"] == pytest.approx(1.0, rel=0.02)
        assert row["activation_ratio"] == pytest.approx(1.0, rel=0.1)
    with pytest.raises(SystemExit) as e:
        parallelism_planner.main(["--gpus", "0"])
    assert e.value.code == 2


def test_fp8_switch_and_agreement():
    model = make_model("tiny", torch.device("cpu"), seed=0)
    tokens = torch.randint(0, 256, (2, 16))
    ref = model(tokens)
    state = dynamic_precision.make_switchable(model)
    torch.testing.assert_close(model(tokens), ref)  # bf16 mode is the original layer
    state.mode = "fp8"
    low = model(tokens)
    assert not torch.equal(low, ref) and (low - ref).abs().max() < 0.1 * ref.abs().max()
    q = dynamic_precision.agreement(model, state, tokens)
    assert 0.8 <= q["top1_agreement"] <= 1 and state.mode == "fp8"


def test_token_precision_cli(tmp_path, monkeypatch):
    monkeypatch.setitem(token_precision.SIZES, "tiny", ("tiny", 2, 8, 6))
    out = tmp_path / "t.json"
    assert token_precision.main(["--size", "tiny", "--device", "cpu", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["escalated_tokens"] == 0 and rows[-1]["escalated_tokens"] == 1
    assert rows[-1]["top1_agreement"] == 1.0  # every step re-run in bf16: bf16 decoding


def test_serving_clis(tmp_path, monkeypatch):
    monkeypatch.setitem(serving.SIZES["tiny"], "requests", 8)
    monkeypatch.setitem(dynamic_precision.REQUESTS, "tiny", 8)
    monkeypatch.setitem(dynamic_precision.RATES, "tiny", [float("inf")])
    monkeypatch.setitem(adaptive_batching.LOAD["tiny"], "budgets", [16, 256])
    monkeypatch.setitem(adaptive_batching.LOAD["tiny"], "requests", 8)
    monkeypatch.setitem(bandit_tuner.KNOBS, "tiny", dict(budgets=[64], batches=[4], concurrency=4, window=3,
                                                         windows=6, offline=1))
    for module in (dynamic_precision, adaptive_batching, bandit_tuner):
        out, png = tmp_path / f"{module.__name__}.json", tmp_path / f"{module.__name__}.png"
        args = ["--size", "tiny", "--device", "cpu", "--json", str(out)]
        assert module.main(args + ([] if module is dynamic_precision else ["--plot", str(png)])) == 0
        report = json.loads(out.read_text())
        assert report["goals"] and report["provenance"]["argv"] is not None
        assert module is dynamic_precision or png.stat().st_size > 0
    assert all(r["finished"] == r["requests"] for r in report_rows(tmp_path))


def report_rows(tmp_path):
    rows = json.loads((tmp_path / "ch19.adaptive_batching.json").read_text())["rows"].values()
    points = json.loads((tmp_path / "ch19.dynamic_precision.json").read_text())["series"].values()
    return list(rows) + [p for s in points for p in s]


def test_bad_input_exits_2(capsys):
    if not torch.cuda.is_available():
        assert adaptive_batching.main(["--size", "tiny", "--device", "cuda"]) == 2
        assert token_precision.main(["--size", "tiny", "--device", "cuda"]) == 2
    for module in (bandit_tuner, kernel_autotune, oom_retry):
        with pytest.raises(SystemExit) as e:
            module.main(["--size", "huge"])
        assert e.value.code == 2


def test_fp8_training_cli(tmp_path):
    out = tmp_path / "f.json"
    assert fp8_training.main(["--size", "tiny", "--steps", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["widths"]["tiny"]["rows"]
    assert [r["run"] for r in rows] == ["bf16", "fp8_tensorwise", "fp8_rowwise"]
    assert all(len(r["losses"]) == 2 and r["tracks_bf16"] for r in rows)  # the emulated path on a CPU
