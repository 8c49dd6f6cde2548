"""The node as Chapter 2 describes it: GPUs, SMs, clocks, memory, links, topology and coherence, read-only.

    python -m ch2.hardware_info                 # a readable report
    python -m ch2.hardware_info --json -        # the same as JSON on stdout (or --json FILE)

Sources, each cross-checked where two of them say the same thing: NVML (`nvidia-ml-py`: clocks, ECC,
power limit, PCIe generation and width, NVLink link states, C2C mode, addressing mode), PyTorch (SM
count, compute capability, memory as the CUDA runtime sees it), the CUDA driver (coherence attributes:
whether the GPU reads pageable host memory through the host's page tables, as Grace Hopper/Blackwell do
over NVLink-C2C), `nvidia-smi topo -m` (the connection matrix) and sysfs (NUMA nodes). The datasheet
figures for the GPU stand beside the ones `benchmark_peak.py` measured (`peaks/<gpu>.json`), each
labelled. Anything a node lacks (no GPU, no NVML, no NVLink, no C2C) is reported as absent, with the
reason, never guessed. Nothing here changes a setting.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import platform
import sys
from pathlib import Path

from ch2 import topology
from harness.report import emit

# CUdevice_attribute values from cuda.h (stable across CUDA releases).
CU_ATTRIBUTES = {
    "warp_size": 10,
    "sm_count": 16,
    "max_threads_per_sm": 39,
    "max_shared_memory_per_sm": 81,
    "host_native_atomics": 86,
    "pageable_memory_access": 88,
    "concurrent_managed_access": 89,
    "pageable_memory_access_uses_host_page_tables": 100,
    "direct_managed_mem_access_from_host": 101,
    "gpu_direct_rdma_supported": 116,
}
# PCIe one-direction bandwidth per lane after line coding, GB/s (Gen3 onwards 128b/130b; Gen6 FLIT ~242/256).
PCIE_LANE_GBPS = {1: 0.25, 2: 0.5, 3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}
NVLINK_C2C_GBPS = 900   # book ch2: NVLink-C2C between Grace and Hopper/Blackwell, ~900 GB/s (both directions)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"hardware_info: {message}", file=sys.stderr)
        sys.exit(2)


# ---- NVML -------------------------------------------------------------------------------------

def _try(fn, *args):
    """NVML's answer, or None where the GPU or driver does not support the query."""
    try:
        value = fn(*args)
    except Exception:
        return None
    return value.decode() if isinstance(value, bytes) else value


def nvml_report() -> dict:
    """Per-GPU facts from NVML; {"available": False, "reason": ...} without NVML or a driver."""
    try:
        import pynvml
    except ImportError:
        return {"available": False, "reason": "nvidia-ml-py (pynvml) is not installed"}
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return {"available": False, "reason": f"NVML could not start: {type(exc).__name__}: {exc}"}
    try:
        out = {"available": True, "driver": _try(pynvml.nvmlSystemGetDriverVersion),
               "cuda_driver": _try(pynvml.nvmlSystemGetCudaDriverVersion_v2), "gpus": []}
        if out["cuda_driver"]:
            out["cuda_driver"] = f"{out['cuda_driver'] // 1000}.{out['cuda_driver'] % 1000 // 10}"
        for i in range(pynvml.nvmlDeviceGetCount()):
            out["gpus"].append(_nvml_gpu(pynvml, pynvml.nvmlDeviceGetHandleByIndex(i), i))
        return out
    finally:
        _try(pynvml.nvmlShutdown)


def _nvml_gpu(nv, h, index: int) -> dict:
    mem = _try(nv.nvmlDeviceGetMemoryInfo, h)
    pci = _try(nv.nvmlDeviceGetPciInfo, h)
    bus_id = (pci.busId.decode() if isinstance(pci.busId, bytes) else pci.busId) if pci else None
    ecc = _try(nv.nvmlDeviceGetEccMode, h)
    cc = _try(nv.nvmlDeviceGetCudaComputeCapability, h)
    mig = _try(nv.nvmlDeviceGetMigMode, h)
    milliwatts = lambda v: None if v is None else v / 1000  # noqa: E731
    clocks = {}
    for label, kind in (("sm", nv.NVML_CLOCK_SM), ("memory", nv.NVML_CLOCK_MEM), ("graphics", nv.NVML_CLOCK_GRAPHICS)):
        clocks[label] = {"current_mhz": _try(nv.nvmlDeviceGetClockInfo, h, kind),
                         "max_mhz": _try(nv.nvmlDeviceGetMaxClockInfo, h, kind)}
    clocks["applications"] = {"graphics_mhz": _try(nv.nvmlDeviceGetApplicationsClock, h, nv.NVML_CLOCK_GRAPHICS),
                              "memory_mhz": _try(nv.nvmlDeviceGetApplicationsClock, h, nv.NVML_CLOCK_MEM)}
    links = []
    for link in range(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18)):
        state = _try(nv.nvmlDeviceGetNvLinkState, h, link)
        if state is None:
            continue  # no such link on this GPU (or NVLink not supported at all)
        links.append({"link": link, "active": bool(state), "version": _try(nv.nvmlDeviceGetNvLinkVersion, h, link)})
    c2c = _try(nv.nvmlDeviceGetC2cModeInfoV, h)
    addressing = _try(nv.nvmlDeviceGetAddressingMode, h)
    gen_cur, gen_max = _try(nv.nvmlDeviceGetCurrPcieLinkGeneration, h), _try(nv.nvmlDeviceGetMaxPcieLinkGeneration, h)
    width_cur, width_max = _try(nv.nvmlDeviceGetCurrPcieLinkWidth, h), _try(nv.nvmlDeviceGetMaxPcieLinkWidth, h)
    return {
        "index": index,
        "name": _try(nv.nvmlDeviceGetName, h),
        "uuid": _try(nv.nvmlDeviceGetUUID, h),
        "pci_bus_id": bus_id,
        "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
        "memory_total_bytes": mem.total if mem else None,
        "memory_used_bytes": mem.used if mem else None,
        "clocks": clocks,
        "ecc": {"current": bool(ecc[0]), "pending": bool(ecc[1])} if ecc else None,
        "ecc_uncorrected_volatile": _try(nv.nvmlDeviceGetTotalEccErrors, h, 1, 0),  # uncorrected, volatile
        "power_limit_w": milliwatts(_try(nv.nvmlDeviceGetPowerManagementLimit, h)),
        "power_limit_enforced_w": milliwatts(_try(nv.nvmlDeviceGetEnforcedPowerLimit, h)),
        "power_draw_w": milliwatts(_try(nv.nvmlDeviceGetPowerUsage, h)),
        "persistence_mode": None if (p := _try(nv.nvmlDeviceGetPersistenceMode, h)) is None else bool(p),
        "mig_mode": None if mig is None else bool(mig[0]),
        "pcie": {"gen_current": gen_cur, "gen_max": gen_max, "width_current": width_cur, "width_max": width_max,
                 "gbps_per_direction_max": pcie_gbps(gen_max, width_max)},
        "nvlink": {"links": links, "active": sum(link["active"] for link in links)},
        "c2c_enabled": None if c2c is None else bool(c2c.isC2cEnabled),
        "addressing_mode": {0: "none", 1: "HMM", 2: "ATS"}.get(addressing, None if addressing is None else str(addressing)),
        "numa_node": topology.pci_numa_node(bus_id) if bus_id else None,
    }


def pcie_gbps(gen: int | None, width: int | None) -> float | None:
    """One direction, after line coding: Gen5 x16 = 63 GB/s."""
    if not gen or not width or gen not in PCIE_LANE_GBPS:
        return None
    return round(PCIE_LANE_GBPS[gen] * width, 1)


# ---- PyTorch and the CUDA driver --------------------------------------------------------------

def torch_report() -> dict:
    try:
        import torch
    except ImportError:
        return {"available": False, "reason": "torch is not installed"}
    out = {"available": torch.cuda.is_available(), "torch": torch.__version__, "cuda": torch.version.cuda, "gpus": []}
    if not out["available"]:
        out["reason"] = "torch sees no CUDA GPU" + ("" if torch.version.cuda else " (a CPU-only build)")
        return out
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out["gpus"].append({
            "index": i, "name": p.name, "uuid": str(getattr(p, "uuid", "")) or None,
            "compute_capability": f"{p.major}.{p.minor}", "sm_count": p.multi_processor_count,
            "memory_total_bytes": p.total_memory, "l2_bytes": getattr(p, "L2_cache_size", None),
            "warp_size": getattr(p, "warp_size", None),
            "max_threads_per_sm": getattr(p, "max_threads_per_multi_processor", None),
            "shared_memory_per_sm": getattr(p, "shared_memory_per_multiprocessor", None),
            "registers_per_sm": getattr(p, "regs_per_multiprocessor", None),
        })
    return out


def cuda_driver_attributes() -> dict:
    """Coherence and SM attributes straight from libcuda (cuDeviceGetAttribute), per visible GPU."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return {"available": False, "reason": "no CUDA driver (libcuda.so.1 not found)"}
    if cuda.cuInit(0) != 0:
        return {"available": False, "reason": "cuInit failed (no GPU visible to the driver)"}
    count = ctypes.c_int()
    cuda.cuDeviceGetCount(ctypes.byref(count))
    gpus = []
    for i in range(count.value):
        dev, value = ctypes.c_int(), ctypes.c_int()
        if cuda.cuDeviceGet(ctypes.byref(dev), i) != 0:
            continue
        attrs = {}
        for name, attr in CU_ATTRIBUTES.items():
            attrs[name] = value.value if cuda.cuDeviceGetAttribute(ctypes.byref(value), attr, dev) == 0 else None
        gpus.append({"index": i, **attrs, "memory_model": memory_model(attrs)})
    return {"available": True, "gpus": gpus}


def memory_model(attrs: dict) -> str:
    """What the GPU can do with host memory, in the book's terms."""
    if attrs.get("pageable_memory_access_uses_host_page_tables"):
        return ("hardware-coherent: the GPU reads pageable host memory through the host's page tables "
                "(ATS over NVLink-C2C, as on Grace Hopper/Blackwell)")
    if attrs.get("pageable_memory_access"):
        return "HMM: the GPU reads pageable host memory through software-managed page migration (no C2C)"
    if attrs.get("concurrent_managed_access"):
        return ("discrete: host memory reaches the GPU by explicit copies, or by page-fault migration of "
                "managed (cudaMallocManaged) memory; no coherent access to pageable memory")
    return "discrete: explicit copies only (managed memory without concurrent access)"


# ---- host, topology, figures ------------------------------------------------------------------

def host_report() -> dict:
    nodes = topology.numa_nodes()
    return {"hostname": platform.node(), "cpu": _cpu_model(), "machine": platform.machine(),
            "logical_cpus": os.cpu_count(), "numa_nodes": {str(k): v for k, v in nodes.items()},
            "numa_node_count": len(nodes) or None, "kernel": platform.release(), "python": platform.python_version()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def topology_report(topo_text: str | None) -> dict:
    source = "given file"
    if topo_text is None:
        topo_text, why = topology.read_topo_m()
        source = "nvidia-smi topo -m"
        if topo_text is None:
            return {"available": False, "reason": why}
    topo = topology.parse(topo_text)
    if not topo.devices:
        return {"available": False, "reason": f"{source}: no matrix found in the output"}
    pairs = [{"a": a, "b": b, "link": topo.links[a][b], "nvlinks": topo.nvlinks(a, b)}
             for i, a in enumerate(topo.gpus) for b in topo.gpus[i + 1:]]
    return {"available": True, "source": source, **topo.to_dict(), "gpu_pairs": pairs}


def figures_report(gpu_names: list[str], peaks_dir: Path | None) -> list[dict]:
    """Per distinct GPU model: datasheet figures, and the measured ones where peaks/<gpu>.json exists."""
    from harness import peaks

    out = []
    for name in dict.fromkeys(gpu_names):
        key = peaks.datasheet_key(name)
        path = peaks.peaks_path(name, peaks_dir)
        entry = {"gpu": name, "datasheet_key": key, "datasheet": peaks.DATASHEET.get(key), "peaks_file": str(path),
                 "measured": None}
        if path.exists():
            data = peaks.load_peaks(path)
            header, rows = peaks.comparison_rows(data, [key] if key else [])
            entry["measured"] = {"provenance": data.get("provenance", {}), "header": header, "rows": rows,
                                 "not_measured": data.get("skipped", {})}
        else:
            entry["reason"] = f"no {path.name}: run benchmark_peak.py on this GPU to measure its ceilings"
        out.append(entry)
    return out


def cross_check(nvml: dict, torch_info: dict) -> list[str]:
    """Where NVML and the CUDA runtime disagree about the same GPU (matched by UUID, else by index)."""
    issues = []
    if not (nvml.get("available") and torch_info.get("available")):
        return issues
    by_uuid = {g["uuid"].removeprefix("GPU-"): g for g in nvml["gpus"] if g.get("uuid")}
    for t in torch_info["gpus"]:
        n = by_uuid.get((t.get("uuid") or "").removeprefix("GPU-"))
        if n is None and t["index"] < len(nvml["gpus"]) and not os.environ.get("CUDA_VISIBLE_DEVICES"):
            n = nvml["gpus"][t["index"]]
        if n is None:
            issues.append(f"cuda:{t['index']} ({t['name']}): no NVML device with its UUID")
            continue
        if n.get("name") and n["name"] != t["name"]:
            issues.append(f"cuda:{t['index']}: name {t['name']!r} (CUDA) vs {n['name']!r} (NVML)")
        if n.get("compute_capability") and n["compute_capability"] != t["compute_capability"]:
            issues.append(f"cuda:{t['index']}: capability {t['compute_capability']} vs {n['compute_capability']}")
        total = n.get("memory_total_bytes")
        if total and abs(total - t["memory_total_bytes"]) > 0.02 * total:
            issues.append(f"cuda:{t['index']}: memory {t['memory_total_bytes']} B (CUDA) vs {total} B (NVML)")
    return issues


def collect(peaks_dir: Path | None = None, topo_text: str | None = None) -> dict:
    from harness.device import git_sha

    nvml, torch_info, driver = nvml_report(), torch_report(), cuda_driver_attributes()
    names = [g["name"] for g in (torch_info.get("gpus") or nvml.get("gpus") or []) if g.get("name")]
    report = {
        "schema": 1,
        "provenance": {"started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "git_sha": git_sha(), "tool": "python -m ch2.hardware_info"},
        "host": host_report(), "nvml": nvml, "torch": torch_info, "cuda_driver": driver,
        "topology": topology_report(topo_text), "figures": figures_report(names, peaks_dir),
        "cross_check": cross_check(nvml, torch_info),
    }
    report["findings"] = findings(report)
    return report


def findings(r: dict) -> list[str]:
    """The chapter's questions answered for this node, one line each."""
    out = []
    gpus = r["nvml"].get("gpus", []) if r["nvml"].get("available") else []
    if not gpus and not r["torch"].get("gpus"):
        why = r["nvml"].get("reason") or r["torch"].get("reason")
        return [f"no NVIDIA GPU on this node ({why}): host facts only"]
    numa = r["host"]["numa_node_count"]
    out.append(f"{len(gpus) or len(r['torch']['gpus'])} GPU(s); {numa or 'unknown number of'} NUMA node(s)")
    for g in gpus:
        pcie = g["pcie"]
        nv = g["nvlink"]
        out.append(f"GPU{g['index']} {g['name']}: PCIe Gen{pcie['gen_current']} x{pcie['width_current']} "
                   f"(max Gen{pcie['gen_max']} x{pcie['width_max']}, {pcie['gbps_per_direction_max']} GB/s per direction); "
                   + (f"{nv['active']} of {len(nv['links'])} NVLink links active" if nv["links"]
                      else "no NVLink reported by NVML"))
        if g["c2c_enabled"]:
            out.append(f"GPU{g['index']}: NVLink-C2C enabled (book figure ~{NVLINK_C2C_GBPS} GB/s CPU<->GPU)")
        else:
            out.append(f"GPU{g['index']}: no NVLink-C2C (C2C mode {'disabled' if g['c2c_enabled'] is False else 'not reported'}):"
                       " the CPU reaches this GPU over PCIe")
    for d in r["cuda_driver"].get("gpus", []):
        out.append(f"cuda:{d['index']} memory model: {d['memory_model']}")
    topo = r["topology"]
    if topo.get("available") and len(topo.get("gpus", [])) > 1:
        kinds = sorted({p["link"] for p in topo["gpu_pairs"]})
        out.append(f"GPU-GPU paths: {', '.join(kinds)}")
    elif topo.get("available"):
        out.append("one GPU: no GPU-GPU path to report (peer bandwidth needs two or more)")
    out += [f"MISMATCH {m}" for m in r["cross_check"]]
    return out


# ---- output -----------------------------------------------------------------------------------

def _gb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e9:.1f} GB"


def render_text(r: dict) -> str:
    from harness.report import text_table

    host = r["host"]
    lines = [f"host: {host['hostname']}, {host['cpu']}, {host['logical_cpus']} CPUs, "
             f"NUMA nodes: {host['numa_node_count'] or 'not exposed'}"]
    nvml = r["nvml"]
    lines.append(f"NVML: driver {nvml.get('driver')}, CUDA driver {nvml.get('cuda_driver')}" if nvml.get("available")
                 else f"NVML: unavailable ({nvml['reason']})")
    t = r["torch"]
    lines.append(f"torch {t.get('torch')} (CUDA {t.get('cuda')}): "
                 + (f"{len(t['gpus'])} GPU(s)" if t.get("available") else t.get("reason", "unavailable")))
    sm = {g["index"]: g for g in t.get("gpus", [])}
    rows = []
    for g in nvml.get("gpus", []):
        c, tg = g["clocks"], sm.get(g["index"], {})
        rows.append([f"GPU{g['index']}", g["name"], g["compute_capability"], tg.get("sm_count", "-"),
                     f"{c['sm']['current_mhz']}/{c['sm']['max_mhz']}", f"{c['memory']['current_mhz']}/{c['memory']['max_mhz']}",
                     _gb(g["memory_total_bytes"]), "on" if (g["ecc"] or {}).get("current") else "off",
                     g["power_limit_w"], f"Gen{g['pcie']['gen_current']} x{g['pcie']['width_current']}",
                     f"{g['nvlink']['active']}/{len(g['nvlink']['links'])}", g["c2c_enabled"], g["numa_node"]])
    if rows:
        lines += ["", text_table(["gpu", "name", "cc", "SMs", "SM MHz now/max", "mem MHz now/max", "memory", "ECC",
                                  "power limit W", "PCIe", "NVLink up", "C2C", "NUMA"], rows)]
    topo = r["topology"]
    if topo.get("available"):
        devs = topo["devices"]
        aff = list(dict.fromkeys(c for a in topo["affinity"].values() for c in a))
        table = [[d] + [topo["links"].get(d, {}).get(e, "") for e in devs] + [topo["affinity"].get(d, {}).get(c, "")
                                                                             for c in aff] for d in devs]
        lines += ["", f"topology ({topo['source']}):", text_table([""] + devs + aff, table)]
    else:
        lines += ["", f"topology: unavailable ({topo['reason']})"]
    for f in r["figures"]:
        m = f["measured"]
        if m:
            prov = m["provenance"]
            lines += ["", f"{f['gpu']}: measured (peaks, git {prov.get('git_sha')}, {prov.get('started_at')}) beside the "
                      f"{f['datasheet_key'] or 'no'} datasheet", text_table(m["header"], m["rows"])]
        else:
            lines += ["", f"{f['gpu']}: {f.get('reason')}; datasheet ({f['datasheet_key']}): {f['datasheet']}"]
    lines += ["", "findings:"] + [f"  - {x}" for x in r["findings"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ch2.hardware_info", description=__doc__.splitlines()[0])
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or - for stdout)")
    parser.add_argument("--topo-file", type=Path, help="parse this saved `nvidia-smi topo -m` output instead")
    parser.add_argument("--peaks-dir", type=Path, help="where peaks/<gpu>.json live (default: peaks/)")
    args = parser.parse_args(argv)
    if args.topo_file and not args.topo_file.is_file():
        parser.error(f"--topo-file {args.topo_file}: no such file")
    if args.peaks_dir and not args.peaks_dir.is_dir():
        parser.error(f"--peaks-dir {args.peaks_dir}: no such folder")
    report = collect(args.peaks_dir, args.topo_file.read_text() if args.topo_file else None)
    try:
        emit(report, render_text, args.json)
    except OSError as exc:
        parser.error(f"cannot write {args.json}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
