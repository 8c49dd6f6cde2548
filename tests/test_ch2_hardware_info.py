"""Chapter 2's hardware report: the topology parser on recorded and constructed `nvidia-smi topo -m` output,
NVML read through a stand-in module, clean degradation without a GPU, and the command line."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from ch2 import hardware_info as hw
from ch2 import topology

FIXTURES = Path(__file__).parent / "fixtures" / "ch2"


def test_recorded_h200_topology_parses():
    topo = topology.parse((FIXTURES / "topo_h200_1gpu.txt").read_text())
    assert topo.devices == ["GPU0"] and topo.gpus == ["GPU0"]
    assert topo.links["GPU0"]["GPU0"] == "X"
    # the driver's empty cell before "GPU NUMA ID" must not shift the columns
    assert topo.affinity["GPU0"] == {"CPU Affinity": "0-15", "NUMA Affinity": "0", "GPU NUMA ID": "N/A"}
    assert topo.nics == {}


def test_constructed_8gpu_topology_parses():
    topo = topology.parse((FIXTURES / "topo_8gpu_constructed.txt").read_text())
    assert topo.gpus == [f"GPU{i}" for i in range(8)] and len(topo.devices) == 12
    assert topo.nvlinks("GPU0", "GPU7") == 18 and topo.nvlinks("GPU0", "NIC0") == 0
    assert topo.links["GPU0"]["NIC0"] == "PXB" and topo.links["GPU0"]["NIC3"] == "SYS"
    assert topo.affinity["GPU5"]["NUMA Affinity"] == "1" and topo.affinity["GPU5"]["GPU NUMA ID"] == "N/A"
    assert topo.affinity["NIC0"]["CPU Affinity"] == ""
    assert topo.nics == {f"NIC{i}": f"mlx5_{i}" for i in range(4)}
    report = hw.topology_report((FIXTURES / "topo_8gpu_constructed.txt").read_text())
    assert len(report["gpu_pairs"]) == 28 and {p["link"] for p in report["gpu_pairs"]} == {"NV18"}


def test_topology_without_a_matrix_is_reported_not_guessed():
    assert topology.parse("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.").devices == []
    assert hw.topology_report("garbage")["available"] is False


def test_sysfs_helpers(tmp_path):
    assert topology.parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert topology.sysfs_bus_id("00000000:17:00.0") == "0000:17:00.0"
    dev = tmp_path / "0000:17:00.0"
    dev.mkdir()
    (dev / "numa_node").write_text("1\n")
    (dev / "local_cpulist").write_text("56-111\n")
    assert topology.pci_numa_node("00000000:17:00.0", tmp_path) == 1
    assert topology.pci_local_cpus("00000000:17:00.0", tmp_path) == list(range(56, 112))
    (dev / "numa_node").write_text("-1\n")
    assert topology.pci_numa_node("00000000:17:00.0", tmp_path) is None
    assert topology.pci_numa_node("00000000:99:00.0", tmp_path) is None
    for n, cpus in ((0, "0-1"), (1, "2-3")):
        (tmp_path / "nodes" / f"node{n}").mkdir(parents=True)
        (tmp_path / "nodes" / f"node{n}" / "cpulist").write_text(cpus)
    assert topology.numa_nodes(tmp_path / "nodes") == {0: [0, 1], 1: [2, 3]}


def test_pcie_and_memory_model():
    assert hw.pcie_gbps(5, 16) == 63.0 and hw.pcie_gbps(4, 16) == 31.5 and hw.pcie_gbps(None, 16) is None
    assert "coherent" in hw.memory_model({"pageable_memory_access": 1, "pageable_memory_access_uses_host_page_tables": 1})
    assert "HMM" in hw.memory_model({"pageable_memory_access": 1})
    assert "page-fault migration" in hw.memory_model({"concurrent_managed_access": 1})


def _fake_pynvml(c2c: bool, links_up: int) -> types.ModuleType:
    """A stand-in for nvidia-ml-py: one H200-like GPU; NVLink queries beyond `links_up` links unsupported."""
    m = types.ModuleType("pynvml")
    m.NVML_CLOCK_GRAPHICS, m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM, m.NVML_NVLINK_MAX_LINKS = 0, 1, 2, 18

    class NVMLError(Exception):
        pass

    def unsupported(*_):
        raise NVMLError("Not Supported")

    def nvlink_state(_h, link):
        if link >= links_up:
            raise NVMLError("Not Supported")
        return 1

    m.nvmlInit = m.nvmlShutdown = lambda: None
    m.nvmlSystemGetDriverVersion = lambda: b"580.159.04"
    m.nvmlSystemGetCudaDriverVersion_v2 = lambda: 13000
    m.nvmlDeviceGetCount = lambda: 1
    m.nvmlDeviceGetHandleByIndex = lambda i: object()
    m.nvmlDeviceGetName = lambda h: "NVIDIA H200"
    m.nvmlDeviceGetUUID = lambda h: "GPU-1234"
    m.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(busId=b"00000000:00:06.0")
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=150_000_000_000, used=1 << 30)
    m.nvmlDeviceGetEccMode = lambda h: (1, 1)
    m.nvmlDeviceGetCudaComputeCapability = lambda h: (9, 0)
    m.nvmlDeviceGetMigMode = lambda h: (0, 0)
    m.nvmlDeviceGetClockInfo = lambda h, k: 345
    m.nvmlDeviceGetMaxClockInfo = lambda h, k: 1980
    m.nvmlDeviceGetApplicationsClock = lambda h, k: 1980
    m.nvmlDeviceGetTotalEccErrors = lambda h, a, b: 0
    m.nvmlDeviceGetPowerManagementLimit = m.nvmlDeviceGetEnforcedPowerLimit = lambda h: 700_000
    m.nvmlDeviceGetPowerUsage = lambda h: 80_000
    m.nvmlDeviceGetPersistenceMode = lambda h: 1
    m.nvmlDeviceGetNvLinkState = nvlink_state
    m.nvmlDeviceGetNvLinkVersion = lambda h, link: 4
    m.nvmlDeviceGetC2cModeInfoV = (lambda h: types.SimpleNamespace(isC2cEnabled=1)) if c2c else unsupported
    m.nvmlDeviceGetAddressingMode = lambda h: 0
    m.nvmlDeviceGetCurrPcieLinkGeneration = m.nvmlDeviceGetMaxPcieLinkGeneration = lambda h: 5
    m.nvmlDeviceGetCurrPcieLinkWidth = m.nvmlDeviceGetMaxPcieLinkWidth = lambda h: 16
    return m


@pytest.mark.parametrize("c2c,links", [(False, 0), (True, 18)])
def test_nvml_report_through_a_stand_in(monkeypatch, c2c, links):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(c2c, links))
    r = hw.nvml_report()
    assert r["available"] and r["driver"] == "580.159.04" and r["cuda_driver"] == "13.0"
    g = r["gpus"][0]
    assert g["name"] == "NVIDIA H200" and g["compute_capability"] == "9.0" and g["power_limit_w"] == 700
    assert g["pcie"] == {"gen_current": 5, "gen_max": 5, "width_current": 16, "width_max": 16,
                         "gbps_per_direction_max": 63.0}
    assert g["nvlink"]["active"] == links and len(g["nvlink"]["links"]) == links
    assert g["c2c_enabled"] is (True if c2c else None) and g["addressing_mode"] == "none"
    report = {"host": {"numa_node_count": 1}, "nvml": r, "torch": {"gpus": []}, "cuda_driver": {},
              "topology": {"available": False}, "cross_check": []}
    text = "\n".join(hw.findings(report))
    assert ("NVLink-C2C enabled" in text) == c2c and ("no NVLink reported" in text) == (links == 0)


def test_cross_check_flags_disagreements():
    nvml = {"available": True, "gpus": [{"uuid": "GPU-ab", "name": "NVIDIA H200", "compute_capability": "9.0",
                                         "memory_total_bytes": 150_000_000_000}]}
    same = {"available": True, "gpus": [{"index": 0, "uuid": "ab", "name": "NVIDIA H200", "compute_capability": "9.0",
                                         "memory_total_bytes": 149_500_000_000}]}
    assert hw.cross_check(nvml, same) == []
    other = {"available": True, "gpus": [{**same["gpus"][0], "name": "NVIDIA H100", "memory_total_bytes": 80e9}]}
    issues = hw.cross_check(nvml, other)
    assert any("name" in i for i in issues) and any("memory" in i for i in issues)


def test_datasheet_beside_measured_from_peaks():
    (entry,) = hw.figures_report(["NVIDIA H200"], None)
    assert entry["datasheet_key"] == "H200" and entry["datasheet"]["memory_gbps"] == 4800
    rows = {row[0]: row for row in entry["measured"]["rows"]}
    assert "device memory copy (bytes read + bytes written)" in rows
    (unknown,) = hw.figures_report(["Some Future GPU"], None)
    assert unknown["measured"] is None and "benchmark_peak.py" in unknown["reason"]


def test_command_line(capsys, tmp_path):
    assert hw.main(["--topo-file", str(FIXTURES / "topo_h200_1gpu.txt"), "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["topology"]["devices"] == ["GPU0"] and report["findings"]
    assert report["provenance"]["tool"] == "python -m ch2.hardware_info"
    out = tmp_path / "hw.json"
    assert hw.main(["--json", str(out)]) == 0 and json.loads(out.read_text())["schema"] == 1
    for bad in (["--topo-file", str(tmp_path / "missing.txt")], ["--bogus"], ["--peaks-dir", str(tmp_path / "no")]):
        with pytest.raises(SystemExit) as info:
            hw.main(bad)
        assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 3   # one line per bad invocation


@pytest.mark.gpu
def test_on_a_gpu_nvml_and_cuda_agree():
    r = hw.collect()
    assert r["nvml"]["available"] and r["torch"]["available"] and r["cuda_driver"]["available"]
    assert r["cross_check"] == []
    g = r["nvml"]["gpus"][0]
    assert g["clocks"]["sm"]["max_mhz"] and g["pcie"]["gen_max"] and r["torch"]["gpus"][0]["sm_count"] > 0
    assert r["cuda_driver"]["gpus"][0]["warp_size"] == 32
