"""The Chapter 20 verifier against candidates written to fool it (tests/ch20_candidates/).

Two live references (one per thread, so two candidates run at a time on two cores); each candidate runs
in its own sandboxed child, interleaved round by round with its reference.
"""
from pathlib import Path

import pytest
from ch20_helpers import HANG_TIMEOUT, verdicts_for

from ch20.problem import load_problem
from ch20.verify import main, verify

REPO = Path(__file__).resolve().parent.parent
PROBLEM = REPO / "ch20/problems/softmax.py"
CANDIDATES = REPO / "tests/ch20_candidates"

# name: (compiled, correct, accepted, words the reason must contain)
CASES = {
    "good": (True, True, True, "correct on"),
    "wrong_values": (True, False, False, "differ beyond"),
    "nan": (True, False, False, "NaN/Inf"),
    "wrong_shape": (True, False, False, "shape"),
    "wrong_dtype": (True, False, False, "dtype"),
    "caching": (True, False, False, "differ beyond"),
    "alternating": (True, False, False, "differ beyond"),
    "mutates_input": (True, False, False, "modified in place"),
    "overflow": (True, False, False, "NaN/Inf"),
    "hang": (True, False, False, "timed out"),
    "crash": (True, False, False, "SIGSEGV"),
    "import_error": (False, False, False, "ModuleNotFoundError"),
    "raises": (True, False, False, "raised"),
    "patched_compare": (True, False, False, "differ beyond"),
    "patched_clock": (True, True, False, "below --min-speedup"),
    "uninitialized": (True, False, False, "wrong in checked call"),
    "patched_reference": (True, True, True, "correct on"),   # the reference runs where it never was
    "forges_result": (False, False, False, "forged"),
    "lazy_when_timed": (True, False, False, "differ beyond"),
}


@pytest.fixture(scope="module")
def verdicts():
    return verdicts_for(CASES, PROBLEM, "softmax_")


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
                "candidate_ms", "speedup", "speedup_ci", "suspect", "hardware", "feedback", "sandbox", "provenance"):
        assert key in v
    assert v["tolerance"]["rtol"] == 1e-4 and v["tolerance"]["dtype"] == "float32"
    assert {t["distribution"] for t in v["trials"]} == set(load_problem(PROBLEM).distributions)
    assert all(t["whole"] for t in v["trials"])
    assert v["baseline_ms"] > 0 and v["candidate_ms"] > 0 and v["hardware"]["name"] == "cpu"
    assert v["provenance"]["threads"] == 1 and len(v["provenance"]["loadavg_start"]) == 3
    assert set(v["sandbox"]) >= {"pid_namespace", "mount_namespace", "network_namespace", "unprivileged_user"}
    assert "Timing: reference" in v["feedback"]


def test_overflow_feedback_names_the_fix(verdicts):
    assert "large" in verdicts["overflow"]["reason"] or "rowwise" in verdicts["overflow"]["reason"] \
        or "edge_rows" in verdicts["overflow"]["reason"]


def test_hang_returns_within_timeout(verdicts):
    assert verdicts["hang"]["elapsed_s"] < HANG_TIMEOUT + 5


def test_patched_clock_earns_no_speedup(verdicts):
    v = verdicts["patched_clock"]
    assert v["candidate_ms"] >= 5.0     # it sleeps 5 ms per call; the parent's clock sees every one of them
    assert v["speedup"] < 0.5
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


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main([]) == 2
    assert main(["--problem", str(tmp_path / "missing.py"), "--candidate", str(CANDIDATES / "softmax_good.py")]) == 2
    assert main(["--problem", str(PROBLEM), "--candidate", str(tmp_path / "missing.py"), "--device", "cpu"]) == 2
    assert main(["--problem", str(PROBLEM), "--candidate", str(CANDIDATES / "softmax_good.py"), "--device", "cpu",
                 "--rounds", "1"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["--trials", "many"])
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ch20.verify:")]
    assert errors and all("\n" not in e for e in errors)


def test_tampering_scores_as_wrong(verdicts):
    from ch20.reward import reward_from_verdict

    assert verdicts["forges_result"]["tampered"]
    assert reward_from_verdict(verdicts["forges_result"]) == pytest.approx(0.1)
    assert reward_from_verdict(verdicts["good"]) >= 1.0
