"""Red-team candidates (tests/ch20_candidates/redteam_*.py, v2_*.py): every attack class of issue 11.

Each v2_* candidate is one of the attacks that beat the v1 verifier, rewritten against v2's own
internals where it targeted them. Each must be rejected or earn no speedup. The ones that attack the
verifier process itself (signals, the network, the import path) run through the CLI in a subprocess, so
that a missing sandbox layer fails the test instead of killing the test run.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ch20_helpers import verdicts_for

from ch20 import sandbox

REPO = Path(__file__).resolve().parent.parent
SOFTMAX = REPO / "ch20/problems/softmax.py"
LAYERNORM = REPO / "ch20/problems/layernorm.py"
CANDIDATES = REPO / "tests/ch20_candidates"
NO_GAIN = 1.25  # no attack may be measured faster than this with 95% confidence (the interval's low end)

# name: (correct, accepted, tampered, words the reason must contain); accepted ones must not gain;
# None: either way (the words then apply when it is rejected)
CASES = {
    "redteam_patched_save": (False, False, False, "wrong in checked call"),
    "redteam_lazy_subclass": (False, False, False, "tensor subclass"),
    # keyed on id(), which fresh inputs reuse only by chance: rejected when it fires, else correct with no gain
    "redteam_none_when_timed": (None, None, None, "NoneType"),
    "redteam_identity_cache": (False, False, False, "differ beyond"),
    "redteam_json_encoder": (True, True, False, "correct on"),
    "redteam_daemon": (True, True, False, "correct on"),
    "v2_reads_inputs": (False, False, False, "differ beyond"),
    "v2_lazy_export": (False, False, True, "digest it committed"),
    "v2_early_reply": (False, False, True, "digest it committed"),
    "v2_tampers_digest": (False, False, False, "wrong in checked call"),   # its input digests lie first
    "v2_aten_override": (True, True, False, "correct on"),        # its deferred work lands inside the timed batch
    "v2_frames": (False, False, False, "modified in place"),
    "v2_sampled_cache": (True, True, False, "correct on"),        # never a hit: every call has new contents
    "v2_pointer_cache": (False, False, False, "differ beyond"),
    "v2_stack_sniff": (False, False, False, "differ beyond"),
    "v2_row0_softmax": (False, False, False, "NaN/Inf"),
    "v2_incomplete_reply": (False, False, True, "digests of every call"),
    "v2_background_load": (True, None, None, ""),                # frozen while the reference runs: no gain
    "v2_fifo": (False, False, True, "forged"),
    "v4_ready_fields": (True, True, False, "correct on"),      # a tuple-keyed dict in its reply: the verdict still writes
    "v4_literal_bomb": (False, False, True, "elements"),       # a reply dear to parse: refused before parsing
    "v4_fork_hop": (True, None, None, ""),                     # hoppers the freeze must follow: no gain
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    pidfile = tmp_path_factory.mktemp("redteam") / "daemon.pid"
    os.environ["CH20_REDTEAM_PIDFILE"] = str(pidfile)
    try:
        out = verdicts_for(CASES, SOFTMAX, "")
    finally:
        os.environ.pop("CH20_REDTEAM_PIDFILE", None)
    out["_daemon_pid"] = int(pidfile.read_text()) if pidfile.exists() else None
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_redteam_verdict(verdicts, name):
    correct, accepted, tampered, words = CASES[name]
    v = verdicts[name]
    json.dumps(v)   # whatever a child replied, the verdict is writable
    if correct is not None:
        assert v["correct"] == correct, v["reason"]
    if accepted is not None:
        assert (v["accepted"], v["tampered"]) == (accepted, tampered), v["reason"]
    if correct is not None or not v["correct"]:
        assert words in v["reason"], v["reason"]
    if v["accepted"]:
        assert v["speedup_ci"][0] < NO_GAIN, f"{name} gained {v['speedup']:.2f}x ({v['speedup_ci']})"


def test_background_load_earns_nothing(verdicts):
    v = verdicts["v2_background_load"]
    assert not v["accepted"] or v["speedup_ci"][0] < NO_GAIN, v["reason"]


def test_escaped_daemon_is_killed(verdicts):
    pid = verdicts["_daemon_pid"]
    if pid is None:   # in a PID namespace the daemon's pid means nothing here; it died with the namespace
        assert verdicts["redteam_daemon"]["sandbox"]["pid_namespace"] == "applied"
        return
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the daemon {pid} outlived the verification")


def _cli(candidate: Path, tmp_path: Path, problem: Path = SOFTMAX) -> dict:
    out = tmp_path / "verdict.json"
    done = subprocess.run([sys.executable, "-m", "ch20.verify", "--problem", str(problem), "--candidate", str(candidate),
                           "--device", "cpu", "--min-speedup", "0", "--trials", "1", "--rounds", "3", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.is_file(), f"no verdict (exit {done.returncode}): {done.stdout[-800:]} {done.stderr[-800:]}"
    return json.loads(out.read_text())


def test_layernorm_without_eps_fails_on_constant_rows(tmp_path):
    v = _cli(CANDIDATES / "v2_layernorm_no_eps.py", tmp_path, LAYERNORM)
    # NaN on constant rows (edge_rows), and off by eps/var on the rows of scale 1e-2 (rowwise): either catches it
    assert not v["correct"] and ("edge_rows" in v["reason"] or "rowwise" in v["reason"]), v["reason"]


def test_signals_reach_neither_the_verifier_nor_the_reference(tmp_path):
    v = _cli(CANDIDATES / "v2_signals_everyone.py", tmp_path)
    assert v["correct"] and v["speedup_ci"][0] < NO_GAIN, v["reason"]


def test_import_path_stays_unwritten(tmp_path):
    before = sandbox.import_path_state()
    v = _cli(CANDIDATES / "v2_sitecustomize.py", tmp_path)
    written = sandbox.import_path_changes(before, sandbox.import_path_state())
    for path in written:   # never leave it behind, whatever happened
        Path(path).unlink(missing_ok=True)
    assert not written and v["correct"] and not v["tampered"], (written, v["reason"])


def test_network_is_unreachable(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    got = []

    def accept():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not got:
            try:
                conn, _ = server.accept()
                got.append(conn.recv(16))
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    cand = tmp_path / "network.py"
    cand.write_text((CANDIDATES / "v2_network.py").read_text().replace("PORT = 9", f"PORT = {server.getsockname()[1]}"))
    v = _cli(cand, tmp_path)
    got.append(None) if not got else None
    thread.join(5)
    server.close()
    assert got == [None], "the candidate reached the test's port"
    assert v["sandbox"]["network_namespace"] == "applied" and v["correct"]


def test_host_memory_hoarding_is_stopped_at_the_cap(monkeypatch):
    """Capped at 1.5 GiB here (half the available memory by default), checked every 0.1 s from the moment it
    starts, also while the verifier waits for the reference."""
    from ch20 import judge
    from ch20.problem import load_problem
    from ch20.verify import verify
    monkeypatch.setattr(judge, "host_memory_cap", lambda: 3 << 29)
    v = verify(load_problem(SOFTMAX), CANDIDATES / "v3_memory_hoard.py", device="cpu", size="tiny", trials=1,
               rounds=3, min_speedup=0.0, timeout=120)
    assert not v["accepted"] and "host memory" in v["reason"] and "cap of 1.50 GiB" in v["reason"], v["reason"]


def test_flooding_the_output_is_stopped_at_the_cap():
    from ch20.problem import load_problem
    from ch20.verify import verify
    v = verify(load_problem(SOFTMAX), CANDIDATES / "v3_floods_output.py", device="cpu", size="tiny", trials=1,
               rounds=3, min_speedup=0.0, timeout=120)
    assert not v["accepted"] and "MiB to its output" in v["reason"], v["reason"]


def test_processes_of_the_candidate_are_capped(monkeypatch):
    """A fork bomb stops at MAX_TASKS processes and threads of the candidate's own user (only where it has one:
    under the verifier's user a cap would count the verifier's processes too). Lowered to 200 here: quicker."""
    from ch20 import _process
    from ch20.problem import load_problem
    from ch20.verify import verify
    monkeypatch.setattr(_process, "MAX_TASKS", 200)
    if not sandbox.probe("cpu")["layers"]["unprivileged_user"].startswith("applied"):
        pytest.skip("the candidate runs as the verifier's own user here: no process cap (the README says so)")
    v = verify(load_problem(SOFTMAX), CANDIDATES / "v3_many_processes.py", device="cpu", size="tiny", trials=1,
               rounds=3, min_speedup=0.0, timeout=120)
    assert not v["accepted"] and "import" in v["reason"] and "BlockingIOError" in v["reason"], v["reason"]


def test_cpu_used_while_frozen_is_caught(monkeypatch):
    """Whatever escapes the freeze (a process that forks and exits faster than the freeze follows, as
    v4_fork_hop tries) shows as CPU time between the freeze and the thaw. Simulated: the freeze signals nothing,
    and the candidate's thread burns all the time."""
    from ch20.problem import load_problem
    from ch20.verify import verify
    monkeypatch.setattr(sandbox, "freeze", lambda pid, settle_s=0.05: True)
    v = verify(load_problem(SOFTMAX), CANDIDATES / "v2_background_load.py", device="cpu", size="tiny", trials=1,
               rounds=3, min_speedup=0.0, timeout=120)
    assert not v["accepted"] and v["tampered"] and "while frozen" in v["reason"], v["reason"]


def test_shared_memory_segments_die_with_the_candidate():
    """A System V segment outlives its creator unless its IPC namespace goes: then it could carry data from one
    verification to the next, and hold memory for good."""
    from ch20.problem import load_problem
    from ch20.verify import verify
    if not sandbox.probe("cpu")["layers"].get("ipc_namespace", "").startswith("applied"):
        pytest.skip("no IPC namespace here (the README says so)")
    v = verify(load_problem(SOFTMAX), CANDIDATES / "v4_sysv_shm.py", device="cpu", size="tiny", trials=1,
               rounds=3, min_speedup=0.0, timeout=120)
    assert v["sandbox"]["ipc_namespace"] == "applied", v["sandbox"]
    keys = [int(line.split()[0]) for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
    assert 0x20C4F00D not in keys


def test_memory_in_a_memfd_counts_against_the_cap(monkeypatch):
    """1 GiB written into a memfd and never mapped: no process's resident set shows it (red team v4)."""
    from ch20 import judge
    from ch20.problem import load_problem
    from ch20.verify import verify
    monkeypatch.setattr(judge, "host_memory_cap", lambda: 900 << 20)
    v = verify(load_problem(SOFTMAX), CANDIDATES / "v4_memfd_hoard.py", device="cpu", size="tiny", trials=1,
               rounds=3, min_speedup=0.0, timeout=120)
    assert not v["accepted"] and "host memory" in v["reason"], v["reason"]
