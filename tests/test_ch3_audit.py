"""Chapter 3's audit: every item judged from a fake /proc and /sys, GPU items from NVML-shaped dicts, and
proof that a real run writes nothing and starts no process."""
from __future__ import annotations

import builtins
import json
import os
import resource
import subprocess
from pathlib import Path

import pytest

from ch3 import audit

STATUSES = {audit.OK, audit.WARN, audit.UNKNOWN}


def fake_root(tmp_path: Path, governor="performance", thp="always [madvise] never", numa_balancing="1",
              swappiness="60", nodes=2) -> Path:
    def put(rel, text):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    for cpu in range(4):
        put(f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", governor + "\n")
    put("sys/kernel/mm/transparent_hugepage/enabled", thp + "\n")
    put("proc/sys/kernel/numa_balancing", numa_balancing + "\n")
    put("proc/sys/vm/swappiness", swappiness + "\n")
    for n in range(nodes):
        put(f"sys/devices/system/node/node{n}/cpulist", f"{2 * n}-{2 * n + 1}\n")
    put("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on\n")
    (tmp_path / "sys/kernel/iommu_groups/0").mkdir(parents=True)
    put("proc/interrupts", "           CPU0  CPU1\n 120:  5  0  PCI-MSI 1  nvidia\n"
                           " 121:  0  9  PCI-MSI 2  mlx5_comp0@pci:0000:17:00.0\n")
    put("proc/irq/120/smp_affinity_list", "0-1\n")
    put("proc/irq/121/smp_affinity_list", "2-3\n")
    put("proc/4242/comm", "irqbalance\n")
    (tmp_path / "dev/shm").mkdir(parents=True)
    return tmp_path


NVML = {"available": True, "driver": "580.159.04", "cuda_driver": "13.0", "gpus": [{
    "index": 0, "pci_bus_id": "00000000:17:00.0", "numa_node": 0, "persistence_mode": False,
    "clocks": {"applications": {"graphics_mhz": 1500}, "graphics": {"max_mhz": 1980}},
    "power_limit_w": 700.0, "power_limit_enforced_w": 500.0, "ecc": {"current": False, "pending": False}}]}


def by_name(items):
    return {i.name: i for i in items}


def test_every_item_judged_from_a_fake_node(tmp_path):
    root = fake_root(tmp_path, governor="powersave", thp="always madvise [never]")
    items = by_name(audit.run_audit(root, env={"NCCL_P2P_DISABLE": "1"}, nvml=NVML, torch_cuda="13.0",
                                    memlock=(64 << 10, 64 << 10)))
    for name in ("cpu_governor", "transparent_hugepages", "numa_balancing", "swappiness", "memlock_limit", "iommu",
                 "irq_affinity", "nccl_environment", "persistence_mode", "application_clocks", "power_limit", "ecc"):
        assert items[name].status == audit.WARN, (name, items[name])
        assert items[name].command and items[name].recommendation, name
    assert "121 (mlx5" in items["irq_affinity"].seen and "irqbalance running" in items["irq_affinity"].seen
    assert items["driver_cuda"].status == audit.OK


def test_a_well_set_node_is_all_ok(tmp_path):
    root = fake_root(tmp_path, thp="[always] madvise never", numa_balancing="0", swappiness="1")
    (root / "proc/cmdline").write_text("root=/dev/sda1 intel_iommu=on iommu=pt\n")
    (root / "proc/irq/121/smp_affinity_list").write_text("0\n")
    good = {**NVML, "gpus": [{**NVML["gpus"][0], "persistence_mode": True, "power_limit_enforced_w": 700.0,
                              "clocks": {"applications": {"graphics_mhz": 1980}, "graphics": {"max_mhz": 1980}},
                              "ecc": {"current": True, "pending": True}}]}
    items = audit.run_audit(root, env={}, nvml=good, torch_cuda="12.8", memlock=(resource.RLIM_INFINITY,) * 2)
    not_ok = {i.name: i.status for i in items if i.status != audit.OK}
    assert set(not_ok) <= {"shm_size"}, not_ok   # /dev/shm is this machine's own, whatever its size


def test_missing_facts_are_unknown_not_guessed(tmp_path):
    items = by_name(audit.run_audit(tmp_path, env={}, nvml={"available": False, "reason": "no driver"}, torch_cuda=None,
                                    memlock=(resource.RLIM_INFINITY,) * 2))
    for name in ("cpu_governor", "transparent_hugepages", "numa_balancing", "swappiness", "irq_affinity",
                 "persistence_mode", "application_clocks", "ecc", "driver_cuda"):
        assert items[name].status == audit.UNKNOWN, name
    assert "no driver" in items["persistence_mode"].seen


def test_driver_older_than_torch_cuda_warns():
    items = by_name(audit.gpu_items({**NVML, "cuda_driver": "12.4"}, "13.0"))
    assert items["driver_cuda"].status == audit.WARN


def test_a_real_run_writes_nothing_and_starts_nothing(monkeypatch):
    real_open = builtins.open

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise AssertionError(f"the audit opened {file} for writing")
        return real_open(file, mode, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError(f"the audit tried to run or write: {args[:1]}")

    monkeypatch.setattr(builtins, "open", read_only_open)
    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, forbidden)
    for name in ("system", "write", "remove", "rename", "chmod", "sched_setaffinity"):
        monkeypatch.setattr(os, name, forbidden)
    monkeypatch.setattr(Path, "write_text", forbidden)
    items = audit.run_audit()
    assert items and all(i.status in STATUSES for i in items)


def test_command_line_json(capsys):
    assert audit.main(["--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["read_only"] is True and sum(data["counts"].values()) == len(data["items"])
    for item in data["items"]:
        assert item["status"] in STATUSES and item["recommendation"]
        if item["status"] == audit.WARN:
            assert item["command"], item
    with pytest.raises(SystemExit) as info:
        audit.main(["--frobnicate"])
    assert info.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
