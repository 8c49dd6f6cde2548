"""Certificates: issued for an accepted kernel by the CLI, re-checked, and drift reported."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

from ch20 import certificate

REPO = Path(__file__).resolve().parent.parent
PROBLEM = REPO / "ch20/problems/softmax.py"
GOOD = REPO / "tests/ch20_candidates/softmax_good.py"


def run(*args):
    return subprocess.run([sys.executable, "-m", "ch20.verify", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_cli_accepts_writes_json_and_certificate_and_rechecks_it(tmp_path):
    shutil.copy(GOOD, tmp_path / "kernel.py")
    cert_path, json_path = tmp_path / "certificate.json", tmp_path / "verdict.json"
    done = run("--problem", str(PROBLEM), "--candidate", str(tmp_path / "kernel.py"), "--device", "cpu",
               "--trials", "3", "--rounds", "6", "--min-speedup", "0", "--json", str(json_path),
               "--save-certificate", str(cert_path))
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = json.loads(json_path.read_text())
    assert verdict["accepted"] and verdict["correct"] and verdict["compiled"]
    cert = json.loads(cert_path.read_text())
    assert cert["candidate"]["path"] == "kernel.py"            # beside the certificate
    assert cert["problem"]["path"] == "ch20/problems/softmax.py"  # in the repository
    assert len(cert["reference_anchor"]["digests"][0][0]) == 64   # SHA-256 per chunk on the CPU
    assert cert["baseline"]["median_ms"] > 0 and cert["speedup"] > 0
    assert cert["versions"]["torch"]

    assert cert["speedup_ci"][0] <= cert["speedup"] <= cert["speedup_ci"][1]
    assert cert["sandbox"]["pid_namespace"] and cert["provenance"]["threads"] == 1

    # Re-checked on the same machine: it holds, unless the machine's load moved the timing by more than its
    # measured noise (a shared 2-core machine can); the rule itself is tested on fixed figures below.
    again = run("--certificate", str(cert_path))
    holds = again.returncode == 0 and "HOLDS" in again.stdout
    drifted_by_load = again.returncode == 1 and "the range a claim measured with the same noise" in again.stdout \
        and "re-verified here: accepted" in again.stdout
    assert holds or drifted_by_load, again.stdout + again.stderr

    # The same kernel certified at a speedup far outside what can be measured here: DRIFTED, exit 1, however
    # wide the interval, few the rounds and low the bar the edited file claims (red team v4)
    forged = dict(cert, speedup=3.0, speedup_ci=[0.5, 9.0], min_speedup=0.0,
                  timing={**cert["timing"], "rounds": 2})
    cert_path.write_text(json.dumps(forged))
    drifted = run("--certificate", str(cert_path))
    assert drifted.returncode == 1 and "DRIFTED" in drifted.stdout and "same noise" in drifted.stdout
    cert_path.write_text(json.dumps(cert))

    (tmp_path / "kernel.py").write_text(GOOD.read_text() + "\n# edited\n")
    report = certificate.check(cert_path)
    assert not report["ok"] and report["sources_changed"] and report["verdict"] is None


def test_drift_holds_only_on_the_same_device_size_dtype_and_speed():
    cert = {"hardware": {"name": "NVIDIA H200", "capability": "9.0", "driver": "570"},
            "versions": {"torch": "2.11.0", "triton": "3.6.0"}, "reference_anchor": {"digests": [["a" * 32]]},
            "device": "cuda", "size": "full", "dtype": "bfloat16", "speedup": 1.2, "speedup_ci": [1.1, 1.3]}
    same = {"hardware": dict(cert["hardware"]), "versions": dict(cert["versions"]), "anchor": {"digests": [["a" * 32]]},
            "device": "cuda", "size": "full", "dtype": "bfloat16", "speedup": 1.25, "speedup_ci": [1.2, 1.3]}
    assert certificate.drift(cert, same) == ([], [])
    moved = {"hardware": {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "driver": "575"},
             "versions": {"torch": "2.12.0", "triton": "3.6.0"}, "anchor": {"digests": [["b" * 32]]},
             "device": "cuda", "size": "small", "dtype": "float32", "speedup": 0.9, "speedup_ci": [0.85, 0.95]}
    blocking, noted = certificate.drift(cert, moved)
    found = " | ".join(blocking)
    assert "hardware name: NVIDIA H200 -> NVIDIA H100" in found
    assert "size: certified full, run as small" in found and "dtype: certified bfloat16" in found
    assert "speedup certified 1.2x" in found and "same noise" in found
    noted = " | ".join(noted)
    assert "torch version: 2.11.0 -> 2.12.0" in noted and "hardware driver" in noted
    assert "reference output on the probe input changed" in noted
