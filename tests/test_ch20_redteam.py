"""Red-team candidates (tests/ch20_candidates/redteam_*.py): the holes found and closed in ch20.

Each was accepted, or got an inflated speedup, before its fix: a wrong kernel whose torch.save was
patched to write right answers; json's encoder patched to shrink the timing samples; Trusted.measure
patched to do the same; a lazy tensor subclass; None returned once timed; answers cached by input
identity; a setsid daemon that outlived the verification.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ch20.problem import load_problem
from ch20.verify import run_reference, verify

REPO = Path(__file__).resolve().parent.parent
PROBLEM = REPO / "ch20/problems/softmax.py"
CANDIDATES = REPO / "tests/ch20_candidates"

# name: (correct, accepted, tampered, words the reason must contain)
CASES = {
    "patched_save": (False, False, False, "differ beyond"),     # the identity kernel, shown as right before
    "lazy_subclass": (False, False, False, "tensor subclass"),
    "none_when_timed": (False, False, False, "returned NoneType"),
    "identity_cache": (False, False, False, "cached by input identity"),
    "patched_measure": (True, False, True, "tampered with"),
    "json_encoder": (True, True, False, "correct on"),          # correct kernel: judged on its true timing
    "daemon": (True, True, False, "correct on"),
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    pidfile = tmp_path_factory.mktemp("redteam") / "daemon.pid"
    os.environ["CH20_REDTEAM_PIDFILE"] = str(pidfile)
    reference = run_reference(load_problem(PROBLEM), device="cpu", size="tiny", trials=3)

    def one(name):
        return name, verify(PROBLEM, CANDIDATES / f"redteam_{name}.py", reference=reference, min_speedup=0.0)

    try:
        with ThreadPoolExecutor(2) as pool:
            out = dict(pool.map(one, CASES))
    finally:
        os.environ.pop("CH20_REDTEAM_PIDFILE", None)
    out["_daemon_pid"] = int(pidfile.read_text()) if pidfile.exists() else None
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_redteam_verdict(verdicts, name):
    correct, accepted, tampered, words = CASES[name]
    v = verdicts[name]
    assert (v["correct"], v["accepted"], v["tampered"]) == (correct, accepted, tampered), v["reason"]
    assert words in v["reason"], v["reason"]


def test_patched_encoder_earns_no_speedup(verdicts):
    # it divides its samples by 1000 on the way out; messages no longer go through json
    assert verdicts["json_encoder"]["speedup"] < 10 and not verdicts["json_encoder"]["suspect"]


def test_escaped_daemon_is_killed(verdicts):
    pid = verdicts["_daemon_pid"]
    assert pid is not None, "the daemon never started"
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the daemon {pid} outlived the verification")
