"""The machine at hand: which device to use, what it is, and the provenance of a run."""
from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

# Architectures that targets files may name, matched as whole words ("GB200" is not "B200").
ARCH_KEYS = ("GB200", "B200", "H200", "H100", "A100", "L40S", "RTX 4090")


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' means CUDA when a GPU is visible, else the CPU. Asking for CUDA without one is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA GPU")
    if requested not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {requested!r}: use auto, cpu or cuda")
    return torch.device(requested)


def synchronize(device: torch.device) -> None:
    """Device-wide: waits for every stream, not just the current one."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3': the file name for expectations and peaks."""
    name = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def arch_key(name: str) -> str:
    """The targets-file key for a device name: 'H200', 'B200', ... or 'default'."""
    upper = name.upper()
    for key in ARCH_KEYS:
        if re.search(rf"\b{key}\b", upper):
            return key
    return "default"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def device_info(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"name": "cpu", "cpu": _cpu_model(), "cores": os.cpu_count(), "arch": "cpu"}
    props = torch.cuda.get_device_properties(device)
    return {
        "name": props.name,
        "arch": arch_key(props.name),
        "capability": f"{props.major}.{props.minor}",
        "driver": _driver_version(),
        "cuda": torch.version.cuda,
        "memory_gb": round(props.total_memory / 1e9, 1),
        "sm_count": props.multi_processor_count,
        "l2_bytes": getattr(props, "L2_cache_size", None),
        "gpu_count": torch.cuda.device_count(),
    }


def git_sha() -> str | None:
    """HEAD (with -dirty for local edits); AISP_GIT_SHA names it where the checkout has no .git (a copied tree)."""
    if os.environ.get("AISP_GIT_SHA"):
        return os.environ["AISP_GIT_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def versions() -> dict:
    try:
        import triton
        triton_version = triton.__version__
    except Exception:  # triton is optional on some CPU installs
        triton_version = None
    return {"python": platform.python_version(), "torch": torch.__version__, "triton": triton_version}


def provenance(device: torch.device, **extra) -> dict:
    """Everything needed to say where a figure came from."""
    return {
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "host": platform.node(),
        "device": device_info(device),
        "versions": versions(),
        "argv": sys.argv[1:],
        **extra,
    }
