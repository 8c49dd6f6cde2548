"""The Chapter 20 verifier against candidates written to fool it (tests/ch20_candidates/).

All candidates share one reference run (the loop does the same); each still runs in its own child
process. Two run at a time to keep the suite quick on two cores.
"""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ch20.problem import load_problem
from ch20.verify import main, run_reference, verify

REPO = Path(__file__).resolve().parent.parent
PROBLEM = REPO / "ch20/problems/softmax.py"
CANDIDATES = REPO / "tests/ch20_candidates"
HANG_TIMEOUT = 5.0

# name: (compiled, correct, accepted, words the reason must contain)
CASES = {
    "good": (True, True, True, "correct on"),
    "wrong_values": (True, False, False, "differ beyond"),
    "nan": (True, False, False, "NaN/Inf"),
    "wrong_shape": (True, False, False, "shape"),
    "wrong_dtype": (True, False, False, "dtype"),
    "caching": (True, False, False, "differ beyond"),
    "alternating": (True, False, False, "run again after the reference"),
    "mutates_input": (True, False, False, "modified its inputs"),
    "overflow": (True, False, False, "large inputs"),
    "hang": (True, False, False, "timed out"),
    "crash": (True, False, False, "SIGSEGV"),
    "import_error": (False, False, False, "ModuleNotFoundError"),
    "raises": (True, False, False, "raised"),
    "patched_compare": (True, False, False, "differ beyond"),
    "patched_clock": (True, True, False, "below --min-speedup"),
    "uninitialized": (True, False, False, "trial 0"),
    "patched_reference": (True, False, False, "changed torch's behaviour"),
    "forges_result": (False, False, False, "forged"),
    "lazy_when_timed": (True, False, False, "timed calls differ"),
    "tampers_verifier": (True, True, False, "clock was tampered with"),  # correct values, lying clock
}


@pytest.fixture(scope="module")
def verdicts():
    problem = load_problem(PROBLEM)
    reference = run_reference(problem, device="cpu", size="tiny", trials=3)
    assert reference.distributions == ["normal", "large", "shifted"]

    def one(name):
        timeout = HANG_TIMEOUT if name == "hang" else 120.0
        # CPU timings of a tiny softmax are noise on a busy machine: only the clock cheat is held to a speedup
        min_speedup = 1.0 if name == "patched_clock" else 0.0
        return name, verify(problem, CANDIDATES / f"softmax_{name}.py", reference=reference, timeout=timeout,
                            min_speedup=min_speedup)

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(one, CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_verdict(verdicts, name):
    compiled, correct, accepted, words = CASES[name]
    v = verdicts[name]
    assert (v["compiled"], v["correct"], v["accepted"]) == (compiled, correct, accepted), v["reason"]
    assert words in v["reason"], v["reason"]
    assert v["feedback"]


def test_good_candidate_verdict_has_every_field(verdicts):
    v = verdicts["good"]
    for key in ("compiled", "correct", "accepted", "reason", "max_abs_err", "tolerance", "trials", "baseline_ms",
                "candidate_ms", "speedup", "suspect", "hardware", "feedback"):
        assert key in v
    assert v["tolerance"]["rtol"] == 1e-4 and v["tolerance"]["dtype"] == "float32"
    assert [t["distribution"] for t in v["trials"]] == ["normal", "large", "shifted"]
    assert v["baseline_ms"] > 0 and v["candidate_ms"] > 0 and v["hardware"]["name"] == "cpu"
    assert "Timing: reference" in v["feedback"]


def test_overflow_is_caught_only_on_large_inputs(verdicts):
    trials = verdicts["overflow"]["trials"]
    assert [t["ok"] for t in trials] == [True, False, True]
    assert "subtract the row maximum" in verdicts["overflow"]["feedback"]


def test_hang_returns_within_timeout(verdicts):
    assert verdicts["hang"]["elapsed_s"] < HANG_TIMEOUT + 3


def test_patched_clock_earns_no_speedup(verdicts):
    v = verdicts["patched_clock"]
    assert v["speedup"] < 0.5   # it sleeps 5 ms per call; its slowed clocks are not the ones timing it
    assert any(w["kind"].startswith("patching") for w in v["warnings"])


def test_static_screen_reports_patching_and_processes(verdicts):
    kinds = {w["kind"] for w in verdicts["patched_compare"]["warnings"]}
    assert "patching-comparison" in kinds
    assert any(w["kind"] == "introspection" for w in verdicts["crash"]["warnings"])


def test_syntax_error_is_judged_without_a_child(tmp_path):
    bad = tmp_path / "softmax_syntax_error.py"
    bad.write_text("import torch\n\nclass ModelNew(torch.nn.Module):\n    def forward(self, x)\n        return x\n")
    v = verify(PROBLEM, bad, device="cpu")
    assert not v["compiled"] and "SyntaxError at line 4" in v["reason"]
    assert v["elapsed_s"] < 1.0
    assert main(["--problem", str(PROBLEM), "--candidate", str(bad), "--device", "cpu"]) == 1


def test_usage_errors_exit_2(tmp_path):
    assert main([]) == 2
    assert main(["--problem", str(tmp_path / "missing.py"), "--candidate", str(CANDIDATES / "softmax_good.py")]) == 2
    assert main(["--problem", str(PROBLEM), "--candidate", str(tmp_path / "missing.py"), "--device", "cpu"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["--trials", "many"])
    assert exc.value.code == 2


def test_tampering_scores_as_wrong(verdicts):
    from ch20.reward import reward_from_verdict

    assert verdicts["tampers_verifier"]["tampered"] and verdicts["forges_result"]["tampered"]
    assert reward_from_verdict(verdicts["tampers_verifier"]) == pytest.approx(0.1)
    assert reward_from_verdict(verdicts["good"]) >= 1.0
