"""The node's wiring: `nvidia-smi topo -m` parsed, and the NUMA facts Linux keeps in sysfs.

`nvidia-smi topo -m` prints a matrix: for each pair of GPUs (and NICs), how data travels between them
(`NV18`: 18 bonded NVLinks; `PIX`/`PXB`: through PCIe switches; `PHB`/`NODE`/`SYS`: through the CPU's host
bridge, within one NUMA node, or across sockets), then each GPU's CPU and NUMA affinity. Recent drivers
underline the header with terminal escape codes and print an empty cell before `GPU NUMA ID`; both are
handled here. Everything in this file reads; nothing writes.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
AFFINITY_COLUMNS = ("CPU Affinity", "NUMA Affinity", "GPU NUMA ID")
LINK_MEANING = {
    "X": "self",
    "SYS": "PCIe and the SMP interconnect between NUMA nodes (QPI/UPI/xGMI)",
    "NODE": "PCIe and the interconnect between PCIe host bridges within one NUMA node",
    "PHB": "PCIe through a host bridge (the CPU)",
    "PXB": "several PCIe bridges, without the host bridge",
    "PIX": "at most one PCIe bridge",
    "NV": "a bonded set of NVLinks",
}
SYSFS_PCI = Path("/sys/bus/pci/devices")
SYSFS_NODES = Path("/sys/devices/system/node")


@dataclass
class Topology:
    devices: list[str] = field(default_factory=list)                 # GPU0, GPU1, NIC0, ... in matrix order
    links: dict[str, dict[str, str]] = field(default_factory=dict)    # links[a][b] = "NV18", "SYS", ...
    affinity: dict[str, dict[str, str]] = field(default_factory=dict)  # affinity["GPU0"]["CPU Affinity"] = "0-15"
    nics: dict[str, str] = field(default_factory=dict)                # NIC0 -> mlx5_0

    @property
    def gpus(self) -> list[str]:
        return [d for d in self.devices if d.startswith("GPU")]

    def nvlinks(self, a: str, b: str) -> int:
        """How many NVLinks join two devices (0 where the path is PCIe or the CPU)."""
        m = re.fullmatch(r"NV(\d+)", self.links.get(a, {}).get(b, ""))
        return int(m[1]) if m else 0

    def to_dict(self) -> dict:
        return asdict(self)


def parse(text: str) -> Topology:
    """The matrix, affinities and NIC names of `nvidia-smi topo -m` output; an empty Topology if none."""
    lines = [ANSI.sub("", line) for line in text.splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith(("\t", " ")) and "\t" in ln and "GPU" in ln), None)
    if start is None:
        return Topology()
    columns = [c.strip() for c in lines[start].split("\t") if c.strip()]
    devices = [c for c in columns if c not in AFFINITY_COLUMNS]
    aff_cols = [c for c in columns if c in AFFINITY_COLUMNS]
    topo = Topology(devices=devices)
    for line in lines[start + 1:]:
        if not line.strip():
            break
        cells = [c.strip() for c in line.split("\t")]
        name, values = cells[0], cells[1:]
        topo.links[name] = {dev: values[i] if i < len(values) else "" for i, dev in enumerate(devices)}
        rest = values[len(devices):]
        filled = [c for c in rest if c]
        if len(rest) > len(aff_cols) and len(filled) == len(aff_cols):
            rest = filled  # the driver's extra empty cell before "GPU NUMA ID"
        topo.affinity[name] = {col: rest[i] if i < len(rest) else "" for i, col in enumerate(aff_cols)}
    in_nics = False
    for line in lines:
        if line.strip().startswith("NIC Legend"):
            in_nics = True
            continue
        m = re.match(r"\s*(NIC\d+):\s*(\S+)", line) if in_nics else None
        if m:
            topo.nics[m[1]] = m[2]
    return topo


def read_topo_m(timeout: float = 20.0) -> tuple[str | None, str]:
    """(output of `nvidia-smi topo -m`, "") or (None, why it could not be read)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, "nvidia-smi not found"
    try:
        out = subprocess.run([exe, "topo", "-m"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nvidia-smi topo -m failed: {exc}"
    if out.returncode != 0:
        return None, f"nvidia-smi topo -m exited {out.returncode}: {(out.stderr or out.stdout).strip()[:200]}"
    return out.stdout, ""


# ---- sysfs: NUMA nodes and where each PCI device sits ------------------------------------------

def parse_cpulist(text: str) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]"""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def numa_nodes(root: Path = SYSFS_NODES) -> dict[int, list[int]]:
    """NUMA node -> its CPUs, from sysfs; {} where the kernel exposes no nodes."""
    nodes = {}
    for d in sorted(root.glob("node[0-9]*")) if root.is_dir() else []:
        try:
            nodes[int(d.name[4:])] = parse_cpulist((d / "cpulist").read_text())
        except (OSError, ValueError):
            continue
    return nodes


def sysfs_bus_id(bus_id: str) -> str:
    """NVML's '00000000:17:00.0' -> sysfs's '0000:17:00.0' (a 4-digit domain, lower case)."""
    domain, _, rest = bus_id.strip().lower().partition(":")
    return f"{int(domain, 16):04x}:{rest}" if rest else bus_id.lower()


def pci_numa_node(bus_id: str, root: Path = SYSFS_PCI) -> int | None:
    """The NUMA node a PCI device is attached to; None when unknown (-1 in sysfs: one node, or not reported)."""
    try:
        node = int((root / sysfs_bus_id(bus_id) / "numa_node").read_text())
    except (OSError, ValueError):
        return None
    return node if node >= 0 else None


def pci_local_cpus(bus_id: str, root: Path = SYSFS_PCI) -> list[int]:
    try:
        return parse_cpulist((root / sysfs_bus_id(bus_id) / "local_cpulist").read_text())
    except (OSError, ValueError):
        return []


# ---- measured peer figures, beside the links they cross ----------------------------------------

P2P_KINDS = (("copy", "p2p_{i}to{j}_gbps"), ("pull", "p2p_kernel_pull_{i}to{j}_gbps"),
             ("push", "p2p_kernel_push_{i}to{j}_gbps"), ("rtt_us", "peer_latency_{i}to{j}_us"))


def p2p_pairs(peaks: dict) -> list[dict]:
    """Each ordered GPU pair a peaks file measured: copy-engine, kernel pull/push GB/s and round-trip us."""
    figures = peaks.get("figures", {})
    found = sorted({(int(m[1]), int(m[2])) for name in figures
                    if (m := re.fullmatch(r"(?:p2p_(?:kernel_(?:pull|push)_)?|peer_latency_)(\d+)to(\d+)_(?:gbps|us)", name))})
    out = []
    for i, j in found:
        row = {"src": i, "dst": j}
        for kind, pattern in P2P_KINDS:
            entry = figures.get(pattern.format(i=i, j=j))
            row[kind] = entry.get("value") if isinstance(entry, dict) else None
        out.append(row)
    return out


def render_p2p(peaks: dict, topo: Topology | None = None) -> str:
    """The measured peer table, each pair beside its `nvidia-smi topo -m` link; or why there is none."""
    from harness.report import text_table

    pairs = p2p_pairs(peaks)
    if not pairs:
        why = peaks.get("skipped", {}).get("p2p_gbps") or peaks.get("skipped", {}).get("peers") or "no P2P figures"
        return f"peer bandwidth: not measured ({why})"
    fmt = lambda v, unit: "-" if v is None else f"{v:.4g} {unit}"  # noqa: E731
    link = lambda i, j: topo.links.get(f"GPU{i}", {}).get(f"GPU{j}", "?") if topo else "?"  # noqa: E731
    rows = [[f"GPU{p['src']} -> GPU{p['dst']}", link(p["src"], p["dst"]),
             fmt(p["copy"], "GB/s"), fmt(p["pull"], "GB/s"), fmt(p["push"], "GB/s"), fmt(p["rtt_us"], "us")] for p in pairs]
    prov = peaks.get("details", {}).get("p2p_provenance") or peaks.get("provenance", {})
    head = f"peer bandwidth, measured (benchmark_peak.py, git {prov.get('git_sha')}, {prov.get('started_at')}):"
    return "\n".join([head, text_table(["pair", "link", "copy engine", "kernel pull", "kernel push", "round trip"], rows)])


def main(argv: list[str] | None = None) -> int:
    """`python -m ch2.topology [--peaks FILE] [--topo-file FILE]`: the link matrix and the measured peer figures."""
    import argparse
    import sys

    from harness import peaks as peaks_mod

    parser = argparse.ArgumentParser(prog="python -m ch2.topology", description=main.__doc__)
    parser.add_argument("--peaks", type=Path, help="peaks JSON (default: peaks/<this GPU>.json)")
    parser.add_argument("--topo-file", type=Path, help="a saved `nvidia-smi topo -m` output instead of running it")
    args = parser.parse_args(argv)
    for opt, path in (("--peaks", args.peaks), ("--topo-file", args.topo_file)):
        if path and not path.is_file():
            print(f"topology: {opt} {path}: no such file", file=sys.stderr)
            return 2
    text, why = (args.topo_file.read_text(), "") if args.topo_file else read_topo_m()
    topo = parse(text) if text else Topology()
    if topo.devices:
        print("links (nvidia-smi topo -m):")
        for a in topo.gpus:
            print("  " + a + ": " + ", ".join(f"{b} {topo.links[a].get(b, '?')}" for b in topo.gpus if b != a))
    else:
        print(f"links: unavailable ({why or 'no matrix in the output'})")
    path = args.peaks
    if path is None:
        import torch
        name = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        path = peaks_mod.peaks_path(name) if name else None
    if path is None or not path.exists():
        print(f"peer bandwidth: no peaks file{f' ({path})' if path else ''}: run benchmark_peak.py --p2p-only on 2+ GPUs")
        return 0
    try:
        print(render_p2p(peaks_mod.load_peaks(path), topo))
    except ValueError as exc:
        print(f"topology: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
