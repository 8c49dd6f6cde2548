"""A read-only audit of a GPU node's OS and driver settings, against Chapter 3's recommendations.

    python -m ch3.audit                 # a table: item, ok/warn/unknown, what was seen
    python -m ch3.audit --json -        # the same as JSON (or --json FILE), with each recommendation and command

Every item is read from /proc, /sys, the process's limits and environment, and NVML; nothing is
written, nothing is run as root, no setting is changed. Each item says `ok` (matches the
recommendation), `warn` (does not: the recommendation and the command an administrator would run
are given) or `unknown` (this node does not expose it: a VM without cpufreq, a container without
/proc/irq, a node without an NVIDIA driver), with what was seen.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ch2 import topology

OK, WARN, UNKNOWN = "ok", "warn", "unknown"
GIB = 1 << 30


@dataclass
class Item:
    name: str
    status: str            # ok | warn | unknown
    seen: str              # what this node has
    recommendation: str    # what Chapter 3 recommends, and why, in a line
    command: str = ""      # what an administrator would run to apply it (never run here)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"audit: {message}", file=sys.stderr)
        sys.exit(2)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _bracketed(text: str) -> str:
    """'always [madvise] never' -> 'madvise'"""
    m = re.search(r"\[(\w+)\]", text)
    return m[1] if m else text.strip()


# ---- the OS -------------------------------------------------------------------------------------

def cpu_governor(root: Path) -> Item:
    rec = "performance governor: cores stay at full clock, so data loading and kernel launches are not slowed by ramp-up"
    files = sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor"))
    govs = {g for g in (_read(f) for f in files) if g}
    if not govs:
        return Item("cpu_governor", UNKNOWN, "no cpufreq in sysfs (a VM or a kernel without frequency scaling)", rec,
                    "sudo cpupower frequency-set -g performance")
    status = OK if govs == {"performance"} else WARN
    return Item("cpu_governor", status, ", ".join(sorted(govs)) + f" ({len(files)} CPUs)", rec,
                "" if status == OK else "sudo cpupower frequency-set -g performance")


def transparent_hugepages(root: Path) -> Item:
    rec = ("THP on (always, or madvise for programs that ask): fewer TLB misses over the large host buffers of "
           "data loading and pinned staging")
    text = _read(root / "sys/kernel/mm/transparent_hugepage/enabled")
    if text is None:
        return Item("transparent_hugepages", UNKNOWN, "not exposed", rec)
    mode = _bracketed(text)
    defrag = _read(root / "sys/kernel/mm/transparent_hugepage/defrag")
    seen = f"enabled={mode}" + (f", defrag={_bracketed(defrag)}" if defrag else "")
    status = WARN if mode == "never" else OK
    return Item("transparent_hugepages", status, seen, rec,
                "" if status == OK else "echo always | sudo tee /sys/kernel/mm/transparent_hugepage/enabled")


def numa_balancing(root: Path) -> Item:
    rec = ("automatic NUMA balancing off on GPU nodes: it unmaps pages to sample access and migrates them, "
           "adding latency spikes to pinned, NUMA-bound processes")
    text = _read(root / "proc/sys/kernel/numa_balancing")
    nodes = topology.numa_nodes(root / "sys/devices/system/node")
    if text is None:
        return Item("numa_balancing", UNKNOWN, f"not exposed ({len(nodes) or '?'} NUMA node(s))", rec)
    if len(nodes) <= 1:
        return Item("numa_balancing", OK, f"kernel.numa_balancing={text}; one NUMA node: nothing to balance", rec)
    status = OK if text == "0" else WARN
    return Item("numa_balancing", status, f"kernel.numa_balancing={text} on {len(nodes)} NUMA nodes", rec,
                "" if status == OK else "sudo sysctl -w kernel.numa_balancing=0")


def swappiness(root: Path) -> Item:
    rec = "vm.swappiness low (<= 10): the kernel keeps a training job's host memory resident instead of swapping it"
    text = _read(root / "proc/sys/vm/swappiness")
    if text is None or not text.isdigit():
        return Item("swappiness", UNKNOWN, "not exposed", rec)
    status = OK if int(text) <= 10 else WARN
    return Item("swappiness", status, f"vm.swappiness={text}", rec, "" if status == OK else "sudo sysctl -w vm.swappiness=1")


def memlock_limit(limit: tuple[int, int] | None = None) -> Item:
    rec = ("ulimit -l unlimited: RDMA (NCCL over InfiniBand, GPUDirect RDMA) registers and locks host buffers; "
           "in containers, --ulimit memlock=-1")
    soft, _hard = limit if limit is not None else resource.getrlimit(resource.RLIMIT_MEMLOCK)
    unlimited = soft == resource.RLIM_INFINITY or soft < 0
    seen = "unlimited" if unlimited else (f"{soft / GIB:.3g} GiB" if soft >= GIB else f"{soft >> 10} KiB")
    status = OK if unlimited else WARN
    return Item("memlock_limit", status, f"ulimit -l: {seen}", rec,
                "" if status == OK else "add '* - memlock unlimited' to /etc/security/limits.conf (docker: --ulimit memlock=-1)")


def shm_size(root: Path) -> Item:
    rec = ("/dev/shm of several GiB: DataLoader workers pass batches and NCCL passes intra-node buffers through "
           "it; Docker's default is 64 MiB")
    try:
        st = os.statvfs(root / "dev/shm")
    except OSError:
        return Item("shm_size", UNKNOWN, "/dev/shm not mounted", rec, "docker run --shm-size=16g ... (or --ipc=host)")
    size = st.f_blocks * st.f_frsize
    status = OK if size >= 1 * GIB else WARN
    return Item("shm_size", status, f"/dev/shm {size / GIB:.3g} GiB", rec,
                "" if status == OK else "docker run --shm-size=16g ... (Kubernetes: an emptyDir with medium: Memory)")


def iommu(root: Path) -> Item:
    rec = ("IOMMU off or in passthrough (iommu=pt) on bare metal: translated DMA slows GPUDirect peer and RDMA "
           "traffic")
    cmdline = _read(root / "proc/cmdline")
    groups = root / "sys/kernel/iommu_groups"
    active = groups.is_dir() and any(groups.iterdir())
    if cmdline is None:
        return Item("iommu", UNKNOWN, "no /proc/cmdline", rec)
    flags = [f for f in cmdline.split() if f.startswith(("iommu", "intel_iommu", "amd_iommu"))]
    passthrough = "iommu=pt" in flags or "iommu.passthrough=1" in flags
    seen = f"cmdline: {' '.join(flags) or 'no iommu flags'}; IOMMU groups: {'present' if active else 'none'}"
    status = OK if (not active or passthrough) else WARN
    return Item("iommu", status, seen, rec, "" if status == OK else "add iommu=pt to the kernel command line and reboot")


def irq_affinity(root: Path, gpu_numa: dict[str, int | None]) -> Item:
    rec = ("GPU and NIC interrupts served by cores of the device's own NUMA node, away from the cores that run "
           "data-loader workers (irqbalance may move them: ban those cores or pin by hand)")
    interrupts = _read(root / "proc/interrupts")
    if interrupts is None:
        return Item("irq_affinity", UNKNOWN, "no /proc/interrupts", rec)
    irqs = [(m[1], m[2]) for m in re.finditer(r"^\s*(\d+):.*?\s(nvidia\S*|mlx5\S*)\s*$", interrupts, re.M)]
    if not irqs:
        return Item("irq_affinity", UNKNOWN, "no nvidia or mlx5 interrupts listed (MSI-X not shown here, or no such devices)",
                    rec)
    nodes = topology.numa_nodes(root / "sys/devices/system/node")
    local = {n for n in gpu_numa.values() if n is not None}
    local_cpus = {c for n in local for c in nodes.get(n, [])}
    off_node = []
    for irq, dev in irqs:
        cpus = set(topology.parse_cpulist(_read(root / f"proc/irq/{irq}/smp_affinity_list") or ""))
        if local_cpus and cpus and not cpus <= local_cpus:
            off_node.append(f"{irq} ({dev})")
    running = any(_read(p) == "irqbalance" for p in (root / "proc").glob("[0-9]*/comm"))
    seen = f"{len(irqs)} GPU/NIC interrupts; irqbalance {'running' if running else 'not running'}"
    if len(nodes) == 1:
        return Item("irq_affinity", OK, seen + "; one NUMA node: every core is local to every device", rec)
    if not local_cpus:
        return Item("irq_affinity", UNKNOWN, seen + "; devices' NUMA nodes unknown", rec)
    if off_node:
        return Item("irq_affinity", WARN, seen + f"; served off the device's node: {', '.join(off_node[:8])}", rec,
                    "echo <cpus of the device's node> | sudo tee /proc/irq/<n>/smp_affinity_list")
    return Item("irq_affinity", OK, seen + "; all on the devices' NUMA node(s)", rec)


def nccl_environment(env: dict[str, str]) -> Item:
    rec = ("NCCL left to its defaults unless measured otherwise; on multi-NIC nodes name the interfaces "
           "(NCCL_SOCKET_IFNAME, NCCL_IB_HCA); NCCL_DEBUG=INFO once to see the chosen transport")
    nccl = {k: v for k, v in env.items() if k.startswith("NCCL_")}
    risky = [k for k in ("NCCL_P2P_DISABLE", "NCCL_SHM_DISABLE", "NCCL_IB_DISABLE") if nccl.get(k) == "1"]
    seen = ", ".join(f"{k}={v}" for k, v in sorted(nccl.items())) or "no NCCL_* variables (defaults)"
    if risky:
        return Item("nccl_environment", WARN, seen + f"; {', '.join(risky)} turn off fast transports", rec,
                    "unset " + " ".join(risky))
    return Item("nccl_environment", OK, seen, rec)


# ---- the GPU and its driver (NVML) ---------------------------------------------------------------

def gpu_items(nvml: dict, torch_cuda: str | None) -> list[Item]:
    if not nvml.get("available"):
        why = nvml.get("reason", "NVML unavailable")
        return [Item(name, UNKNOWN, f"no NVML: {why}", rec) for name, rec in [
            ("persistence_mode", "persistence mode on: the driver stays loaded, no 1-2 s init per process"),
            ("application_clocks", "application clocks at their default (the maximum): no accidental cap"),
            ("power_limit", "power limit at the board's default"),
            ("ecc", "ECC on for training (silent corruption costs more than ECC's few percent)"),
            ("driver_cuda", "a driver whose CUDA version is at least the one PyTorch was built with")]]
    gpus = nvml["gpus"]
    items = []
    off = [f"GPU{g['index']}" for g in gpus if g["persistence_mode"] is False]
    known = [g for g in gpus if g["persistence_mode"] is not None]
    items.append(Item("persistence_mode", UNKNOWN if not known else (WARN if off else OK),
                      f"off on {', '.join(off)}" if off else ("on" if known else "not reported"),
                      "persistence mode on: the driver stays loaded, no 1-2 s init per process",
                      "sudo nvidia-smi -pm 1 (or enable nvidia-persistenced)" if off else ""))
    capped, seen = [], []
    for g in gpus:
        app, mx = g["clocks"]["applications"]["graphics_mhz"], g["clocks"]["graphics"]["max_mhz"]
        seen.append(f"GPU{g['index']} {app}/{mx} MHz")
        if app and mx and app < mx:
            capped.append(f"GPU{g['index']}")
    items.append(Item("application_clocks", WARN if capped else (OK if seen else UNKNOWN),
                      "applications/max graphics clock: " + ", ".join(seen),
                      "application clocks at their default (the maximum); lock clocks only for benchmarking, and say so",
                      "sudo nvidia-smi -rac (reset application clocks)" if capped else ""))
    low = [f"GPU{g['index']} {g['power_limit_w']:.0f} W" for g in gpus
           if g["power_limit_w"] and g["power_limit_enforced_w"] and g["power_limit_enforced_w"] < g["power_limit_w"] - 1]
    limits = ", ".join(f"GPU{g['index']} {g['power_limit_w']:.0f} W" for g in gpus if g["power_limit_w"])
    items.append(Item("power_limit", WARN if low else (OK if limits else UNKNOWN), limits or "not reported",
                      "power limit at the board's default: a lower one lowers sustained clocks",
                      "sudo nvidia-smi -pl <default watts>" if low else ""))
    no_ecc = [f"GPU{g['index']}" for g in gpus if g["ecc"] and not g["ecc"]["current"]]
    has_ecc = [g for g in gpus if g["ecc"]]
    items.append(Item("ecc", UNKNOWN if not has_ecc else (WARN if no_ecc else OK),
                      f"off on {', '.join(no_ecc)}" if no_ecc else ("on" if has_ecc else "not supported/reported"),
                      "ECC on for training (silent corruption costs more than ECC's few percent)",
                      "sudo nvidia-smi -e 1 (takes effect after a GPU reset)" if no_ecc else ""))
    drv = nvml.get("cuda_driver")
    if drv and torch_cuda:
        older = tuple(map(int, drv.split("."))) < tuple(map(int, torch_cuda.split(".")[:2]))
        items.append(Item("driver_cuda", WARN if older else OK, f"driver {nvml.get('driver')} (CUDA {drv}), "
                          f"torch built for CUDA {torch_cuda}",
                          "a driver whose CUDA version is at least the one PyTorch was built with",
                          "install a newer NVIDIA driver" if older else ""))
    else:
        items.append(Item("driver_cuda", UNKNOWN, f"driver CUDA {drv}, torch CUDA {torch_cuda}",
                          "a driver whose CUDA version is at least the one PyTorch was built with"))
    return items


def run_audit(root: Path = Path("/"), env: dict[str, str] | None = None, nvml: dict | None = None,
              torch_cuda: str | None = "auto", memlock: tuple[int, int] | None = None) -> list[Item]:
    """Every item, read from `root` (a fake tree in tests), the environment and NVML."""
    if nvml is None:
        from ch2.hardware_info import nvml_report
        nvml = nvml_report()
    if torch_cuda == "auto":
        import torch
        torch_cuda = torch.version.cuda
    gpu_numa = {g["pci_bus_id"]: g.get("numa_node") for g in nvml.get("gpus", [])} if nvml.get("available") else {}
    return [cpu_governor(root), transparent_hugepages(root), numa_balancing(root), swappiness(root),
            memlock_limit(memlock), shm_size(root), iommu(root), irq_affinity(root, gpu_numa),
            nccl_environment(dict(os.environ if env is None else env)), *gpu_items(nvml, torch_cuda)]


def main(argv: list[str] | None = None) -> int:
    from harness.report import text_table

    parser = _Parser(prog="python -m ch3.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or - for stdout)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print each recommendation and command")
    args = parser.parse_args(argv)
    items = run_audit()
    data = {"schema": 1, "tool": "python -m ch3.audit", "read_only": True, "items": [asdict(i) for i in items],
            "counts": {s: sum(i.status == s for i in items) for s in (OK, WARN, UNKNOWN)}}
    if args.json == "-":
        print(json.dumps(data, indent=1))
        return 0
    print(text_table(["item", "status", "seen"], [[i.name, i.status, i.seen] for i in items]))
    for i in items:
        if args.verbose or i.status == WARN:
            print(f"\n{i.name}: {i.recommendation}" + (f"\n  admin: {i.command}" if i.command else ""))
    print(f"\n{data['counts'][OK]} ok, {data['counts'][WARN]} warn, {data['counts'][UNKNOWN]} unknown "
          "(read-only: nothing was changed)")
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(data, indent=1))
        except OSError as exc:
            parser.error(f"cannot write {args.json}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
