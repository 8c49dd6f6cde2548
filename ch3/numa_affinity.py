"""NUMA affinity: run next to the GPU. Host-to-device copies and a data-loader step, bound local vs remote.

    python -m ch3.numa_affinity                  # find the GPU's NUMA node, measure, compare
    python -m ch3.numa_affinity --json -         # the same as JSON

On a multi-socket node each GPU hangs off one CPU's PCIe root: a process whose threads and host
buffers sit on the other socket sends every copy across the inter-socket link (UPI/xGMI) first. The
GPU's node comes from sysfs (`/sys/bus/pci/devices/<bus id>/numa_node`); each measurement runs in a
child process bound with `sched_setaffinity` to one node's CPUs, whose host buffers are then allocated
from that node by Linux's first-touch policy (what `numactl --cpunodebind=N --membind=N` makes
explicit). Measured per binding: pinned host-to-device bandwidth, and one data-loader step (gather a
batch from a host dataset, pin it, copy it to the GPU). On a node with one NUMA node there is nothing
to compare: that is reported, with the reason, and only the local figures are measured. Only the
child processes are bound; this process and the machine's settings are left as they were.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

from ch2 import topology
from harness.report import emit

SIZES = {"tiny": dict(copy_mib=4, samples=256, sample_kib=16, batch=32, reps=3),
         "small": dict(copy_mib=64, samples=2048, sample_kib=64, batch=64, reps=5),
         "full": dict(copy_mib=512, samples=8192, sample_kib=192, batch=128, reps=10)}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"numa_affinity: {message}", file=sys.stderr)
        sys.exit(2)


def node_distances(root: Path = topology.SYSFS_NODES) -> dict[int, list[int]]:
    out = {}
    for node in topology.numa_nodes(root):
        text = (root / f"node{node}" / "distance")
        try:
            out[node] = [int(v) for v in text.read_text().split()]
        except (OSError, ValueError):
            pass
    return out


def plan(nodes: dict[int, list[int]], gpu_node: int | None, distances: dict[int, list[int]] | None = None) -> dict:
    """Which node is local to the GPU, which is remote (the farthest with CPUs), or why there is no comparison."""
    with_cpus = {n: c for n, c in nodes.items() if c}
    if len(with_cpus) <= 1:
        only = next(iter(with_cpus), None)
        return {"local": only, "remote": None,
                "skip": f"one NUMA node with CPUs ({len(nodes)} in all): local and remote binding are the same here"}
    if gpu_node is None or gpu_node not in with_cpus:
        return {"local": None, "remote": None,
                "skip": "the GPU's NUMA node is not reported (sysfs numa_node is -1 or missing): cannot tell local from remote"}
    row = (distances or {}).get(gpu_node)
    others = [n for n in with_cpus if n != gpu_node]
    remote = max(others, key=lambda n: (row[n] if row and n < len(row) else 0, -n))
    return {"local": gpu_node, "remote": remote, "skip": None}


def gpu_numa_node(device_index: int) -> tuple[int | None, str | None]:
    """(NUMA node, PCI bus id) of a CUDA device, via NVML matched by UUID; (None, None) if unknown."""
    import torch

    from ch2.hardware_info import nvml_report

    nvml = nvml_report()
    if not nvml.get("available") or not torch.cuda.is_available():
        return None, None
    uuid = str(getattr(torch.cuda.get_device_properties(device_index), "uuid", "")).removeprefix("GPU-")
    for g in nvml["gpus"]:
        if (g.get("uuid") or "").removeprefix("GPU-") == uuid:
            return g.get("numa_node"), g.get("pci_bus_id")
    return None, None


def measure(device: str, cfg: dict, cpus: list[int] | None = None) -> dict:
    """Pinned host->device GB/s and a loader step's time, with this process bound to `cpus` (if given)."""
    import torch

    if cpus:
        os.sched_setaffinity(0, cpus)
        torch.set_num_threads(min(len(cpus), 8))
    dev = torch.device(device)
    n = cfg["copy_mib"] << 18                     # float32 elements
    src = torch.ones(n).pin_memory() if dev.type == "cuda" else torch.ones(n)
    dataset = torch.rand(cfg["samples"], cfg["sample_kib"] << 8)   # first touch here: this node's memory
    g = torch.Generator().manual_seed(0)

    def copy():
        return src.to(dev, non_blocking=True) if dev.type == "cuda" else src.clone()

    def loader_step():
        idx = torch.randint(0, cfg["samples"], (cfg["batch"],), generator=g)
        batch = dataset.index_select(0, idx)
        if dev.type == "cuda":
            batch = batch.pin_memory().to(dev, non_blocking=True)
        return batch

    def timed(fn) -> float:
        fn()
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        sync()
        best = float("inf")
        for _ in range(cfg["reps"]):
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
        return best

    copy_s, step_s = timed(copy), timed(loader_step)
    return {"cpus": cpus or sorted(os.sched_getaffinity(0)),
            "copy_gbps": n * 4 / copy_s / 1e9, "copy_what": "pinned host->device" if dev.type == "cuda" else "host memcpy",
            "loader_step_ms": step_s * 1e3, "batch_mib": cfg["batch"] * (cfg["sample_kib"] << 10) / 2**20}


def _child(device, cfg, cpus, queue):
    try:
        queue.put(measure(device, cfg, cpus))
    except Exception as exc:  # reported, never raised past the queue
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def measure_bound(device: str, cfg: dict, cpus: list[int], timeout: float = 300) -> dict:
    """measure() in a spawned child bound to `cpus`; the child is ended if it overruns."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(device, cfg, cpus, queue), daemon=True)
    proc.start()
    try:
        return queue.get(timeout=timeout)
    except Exception:
        return {"error": f"no result within {timeout:g} s"}
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def run(device: str, size: str) -> dict:
    cfg = SIZES[size]
    index = 0
    gpu_node, bus = gpu_numa_node(index) if device == "cuda" else (None, None)
    nodes = topology.numa_nodes()
    p = plan(nodes, gpu_node, node_distances())
    report = {"schema": 1, "tool": "python -m ch3.numa_affinity", "device": device, "size": size,
              "numa_nodes": {str(k): v for k, v in nodes.items()}, "gpu_pci_bus_id": bus, "gpu_numa_node": gpu_node,
              **p, "local_run": None, "remote_run": None, "numactl": None}
    if p["local"] is not None:
        report["numactl"] = f"numactl --cpunodebind={p['local']} --membind={p['local']} python train.py"
    if p["skip"]:
        report["local_run"] = measure(device, cfg)   # nothing to bind against: this process, as it is
        return report
    report["local_run"] = measure_bound(device, cfg, nodes[p["local"]])
    report["remote_run"] = measure_bound(device, cfg, nodes[p["remote"]])
    loc, rem = report["local_run"], report["remote_run"]
    if "error" not in loc and "error" not in rem:
        report["local_over_remote"] = {"copy_gbps": loc["copy_gbps"] / rem["copy_gbps"],
                                       "loader_step": rem["loader_step_ms"] / loc["loader_step_ms"]}
    return report


def render(r: dict) -> str:
    lines = [f"NUMA nodes: {', '.join(f'{k} (CPUs {len(v)})' for k, v in r['numa_nodes'].items()) or 'not exposed'}",
             f"GPU: bus {r['gpu_pci_bus_id']}, NUMA node {r['gpu_numa_node']}" if r["device"] == "cuda" else "device: cpu"]
    if r["skip"]:
        lines.append(f"comparison skipped: {r['skip']}")
    for label in ("local_run", "remote_run"):
        m = r.get(label)
        if m and "error" in m:
            lines.append(f"{label}: failed: {m['error']}")
        elif m:
            lines.append(f"{label}: {m['copy_what']} {m['copy_gbps']:.3g} GB/s, loader step {m['loader_step_ms']:.3g} ms "
                         f"({m['batch_mib']:.3g} MiB batch), CPUs {topology_cpus(m['cpus'])}")
    if r.get("local_over_remote"):
        x = r["local_over_remote"]
        lines.append(f"local over remote: copy {x['copy_gbps']:.2f}x, loader step {x['loader_step']:.2f}x")
    if r["numactl"]:
        lines.append(f"bind a job to NUMA node {r['local']} (the GPU's where known): {r['numactl']}")
    return "\n".join(lines)


def topology_cpus(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'"""
    out, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            out.append(f"{start}-{c}" if c != start else str(c))
            start = None
    return ",".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ch3.numa_affinity", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--size", choices=list(SIZES), help="default: full on a GPU, tiny on the CPU")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or - for stdout)")
    args = parser.parse_args(argv)
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for, but torch sees no CUDA GPU")
    report = run(device, args.size or ("full" if device == "cuda" else "tiny"))
    try:
        emit(report, render, args.json)
    except OSError as exc:
        parser.error(f"cannot write {args.json}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
