"""Which profilers can run on this machine, and why not: found, able to say their version, and (ncu) which metrics the GPU has.

A tool is looked up on PATH, then in CUDA_HOME/bin and the usual install folders. One that is missing,
or cannot even print its version, is `unavailable: <reason>`, and the run goes on without it.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

PROFILERS = ("torch", "ncu", "nsys")

# Duration, DRAM and SM throughput (% of peak), achieved occupancy, L2 hit rate, tensor pipes.
NCU_METRICS = (
    "gpu__time_duration.sum",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "sm__warps_active.avg.pct_of_peak_sustained_active",
    "lts__t_sector_hit_rate.pct",
    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
    "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active",  # Hopper and later
)
NSYS_REPORTS = "cuda_gpu_kern_sum,cuda_api_sum,nvtx_sum,cuda_gpu_mem_time_sum"

# Where the tools live when they are not on PATH; newest version first within each pattern.
TOOL_GLOBS = {
    "ncu": ["{cuda_home}/bin/ncu", "/usr/local/cuda/bin/ncu", "/usr/local/cuda-*/bin/ncu",
            "/opt/nvidia/nsight-compute/*/ncu", "/usr/local/cuda/nsight-compute-*/ncu"],
    "nsys": ["{cuda_home}/bin/nsys", "/usr/local/cuda/bin/nsys", "/usr/local/cuda-*/bin/nsys",
             "/opt/nvidia/nsight-systems/*/bin/nsys", "/usr/local/cuda/nsight-systems-*/bin/nsys",
             "/opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys"],
}


# ---------------------------------------------------------------------------------------------- tools
@dataclass
class Tool:
    name: str
    path: str | None = None
    version: str | None = None
    reason: str | None = None          # None: available
    metrics: set[str] | None = None    # ncu: the metric names this GPU has (None: not known)

    @property
    def available(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        if not self.available:
            return f"unavailable: {self.reason}"
        return " ".join(x for x in ("available", self.version and f"({self.version})", self.path) if x)


def find_tool(name: str, env: dict | None = None, globs: list[str] | None = None) -> str | None:
    """PATH first, then CUDA_HOME/bin and the usual install folders."""
    env = os.environ if env is None else env
    if env.get("PATH") and (hit := shutil.which(name, path=env["PATH"])):
        return hit
    for pattern in TOOL_GLOBS.get(name, []) if globs is None else globs:
        if "{cuda_home}" in pattern:
            home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
            if not home:
                continue
            pattern = pattern.format(cuda_home=home)
        for hit in sorted(glob.glob(pattern), reverse=True):
            if os.path.isfile(hit) and os.access(hit, os.X_OK):
                return hit
    return None


def probe_version(name: str, path: str, timeout: float = 60) -> Tool:
    """Run `<tool> --version`: a tool that cannot even say its version is not usable."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Tool(name, path, reason=f"`{path} --version` failed: {exc}")
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    if out.returncode != 0:
        return Tool(name, path, reason=f"`{path} --version` exited with code {out.returncode}: {(lines or [''])[-1][:200]}")
    return Tool(name, path, version=(lines or ["?"])[-1][:120])


def ncu_metric_names(path: str, timeout: float = 120) -> set[str] | None:
    """Base metric names this GPU supports (`ncu --query-metrics`); None when the answer is unclear."""
    try:
        out = subprocess.run([path, "--query-metrics"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = set(re.findall(r"^([a-z0-9]+__[a-z0-9_]+)\s", out.stdout, flags=re.M))
    # Trust the list only when it holds metrics every GPU since Volta has; else the format was not understood.
    return names if {"gpu__time_duration", "dram__throughput", "sm__throughput"} <= names else None


def select_metrics(wanted: tuple[str, ...], known: set[str] | None) -> tuple[list[str], list[str]]:
    """(kept, dropped): a metric whose base name this GPU lacks would make ncu refuse the whole run."""
    if known is None:
        return list(wanted), []
    kept = [m for m in wanted if m.split(".")[0] in known]
    return kept, [m for m in wanted if m not in kept]


def check_tools(profilers: list[str], device_type: str, overrides: dict[str, str] | None = None,
                env: dict | None = None, globs: dict[str, list[str]] | None = None, probe: bool = True) -> dict[str, Tool]:
    """Which profilers can run here, and why not. `probe=False` (dry runs) only looks the tools up."""
    import torch
    tools = {}
    for name in profilers:
        if name == "torch":
            tools[name] = Tool("torch", version=f"torch {torch.__version__}")
            continue
        if probe and device_type != "cuda":
            tools[name] = Tool(name, reason="no CUDA GPU")
            continue
        path = (overrides or {}).get(name) or find_tool(name, env, None if globs is None else globs.get(name, []))
        if path is None:
            tools[name] = Tool(name, reason=f"{name} not found (PATH, CUDA_HOME/bin, /usr/local/cuda*/bin, /opt/nvidia/nsight-*)")
        elif not (os.path.isfile(path) and os.access(path, os.X_OK)):
            tools[name] = Tool(name, path, reason=f"{path} is not an executable file")
        elif not probe:
            tools[name] = Tool(name, path, version="not probed")
        else:
            tools[name] = probe_version(name, path)
            if name == "ncu" and tools[name].available:
                tools[name].metrics = ncu_metric_names(path)
            if name == "nsys" and tools[name].available:
                tools[name] = probe_nsys_report(tools[name])
    return tools


NSYS_PROBE = "import torch; torch.ones(1, device='cuda').add_(1); torch.cuda.synchronize()"


def probe_nsys_report(tool: Tool, timeout: float = 120) -> Tool:
    """Profile a one-kernel program: an nsys that cannot turn its raw stream into a report is unavailable.

    Some nsys installs record but cannot import what they recorded (a .qdstrm and an importer error); found out on
    a real job, that costs the job's whole run and gigabytes of raw stream. Here it costs a few seconds."""
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="aisp-nsys-probe-") as tmp:
        report = os.path.join(tmp, "probe")
        cmd = [tool.path, "profile", "--trace=cuda", "--sample=none", "--cpuctxsw=none", "--force-overwrite=true",
               "-o", report, sys.executable, "-c", NSYS_PROBE]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Tool(tool.name, tool.path, tool.version, reason=f"nsys could not profile a one-kernel program: {exc}")
        if os.path.exists(report + ".nsys-rep"):
            return tool
        lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if "Importer" in ln or "error" in ln.lower()), (lines or ["?"])[-1])
        return Tool(tool.name, tool.path, tool.version,
                    reason=f"nsys wrote no report for a one-kernel program (exit code {out.returncode}): {why[:200]}")
