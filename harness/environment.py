"""What the machine was doing while an example ran: CPU threads, affinity and load; GPU clocks, power, temperature.

On a shared CPU, torch's default thread pool makes medians measure the scheduler (a waiting thread spins
until the next tick), so a timing process uses a fixed thread count (1 by default, as
torch.utils.benchmark.Timer does) and, where the OS allows, that many of the least busy cores. On a GPU,
the SM clock before and after each example shows whether it ran throttled. Nothing here changes a setting
of the machine: affinity and thread count are this process's own.
"""
from __future__ import annotations

import os
import time

import torch

# NVML clock-event reasons worth a flag (the idle and application-clock ones are not throttling).
_THROTTLE_REASONS = {0x4: "SW power cap", 0x8: "HW slowdown", 0x20: "SW thermal slowdown",
                     0x40: "HW thermal slowdown", 0x80: "HW power brake"}


def child_thread_env(threads: int) -> dict[str, str]:
    """Environment for a timing child: a fixed intra-op pool; PASSIVE waiting when there is more than one thread."""
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if threads > 1:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def _busy_fractions(cores: list[int], interval: float = 0.05) -> dict[int, float]:
    def read() -> dict[int, tuple[int, int]]:
        out = {}
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    parts = line.split()
                    vals = list(map(int, parts[1:]))
                    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
                    out[int(parts[0][3:])] = (sum(vals), idle)
        return out
    a = read()
    time.sleep(interval)
    b = read()
    busy = {}
    for c in cores:
        if c in a and c in b:
            total, idle = b[c][0] - a[c][0], b[c][1] - a[c][1]
            busy[c] = 1.0 - idle / total if total > 0 else 0.0
    return busy


def pin_threads(threads: int, affinity: bool = True) -> dict:
    """Use `threads` intra-op threads (and, with `affinity`, that many of the least busy allowed cores); what was
    done, for the record."""
    torch.set_num_threads(threads)
    info: dict = {"threads": torch.get_num_threads(), "cores": os.cpu_count()}
    if not affinity:
        info["affinity"] = "not set (GPU timing)"
        return info
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["affinity"] = "not available on this OS"
        return info
    info["cores_allowed"] = len(allowed)
    if threads >= len(allowed):
        info["affinity"] = allowed
        return info
    try:
        busy = _busy_fractions(allowed)
        chosen = sorted(sorted(allowed, key=lambda c: busy.get(c, 0.0))[:threads])
        os.sched_setaffinity(0, chosen)
        info["affinity"] = chosen
    except OSError as exc:
        info["affinity"] = f"not set: {exc}"
    return info


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def gpu_state(device: torch.device) -> dict:
    """SM clock (and its maximum), power, temperature and clock-event reasons, where NVML gives them.

    Read right after the last timed call, while the GPU is still busy: an idle GPU lowers its clock at once,
    so a low clock alone is no sign of throttling; the clock-event reasons are.
    """
    if device.type != "cuda":
        return {}
    try:
        import pynvml
        pynvml.nvmlInit()
        idx = device.index if device.index is not None else torch.cuda.current_device()
        h = pynvml.nvmlDeviceGetHandleByIndex(idx)
        state = {"sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                 "sm_clock_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)}
        for key, call in (("power_w", lambda: pynvml.nvmlDeviceGetPowerUsage(h) / 1e3),
                          ("temperature_c", lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
                          ("throttle_reasons", lambda: _reasons(pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)))):
            try:
                state[key] = call()
            except pynvml.NVMLError:
                pass
        return state
    except Exception as exc:  # no NVML on this machine: say so rather than guess
        return {"unavailable": f"{type(exc).__name__}: {exc}"[:200]}


def _reasons(mask: int) -> list[str]:
    return [name for bit, name in _THROTTLE_REASONS.items() if mask & bit]


def flags(env: dict) -> list[str]:
    """Warnings about the conditions a result was measured under."""
    out = []
    cpu = env.get("cpu", {})
    load, cores, threads = env.get("load_before"), cpu.get("cores_allowed") or cpu.get("cores"), cpu.get("threads")
    if env.get("device") == "cpu" and load is not None and cores and threads and cores - load < threads:
        out.append(f"machine loaded: load average {load:.1f} on {cores} cores leaves fewer free cores than the "
                   f"{threads} timing thread(s); CPU figures may be slow or noisy")
    after = env.get("gpu_after", {})
    if after.get("throttle_reasons"):
        out.append(f"GPU clock limited during the run: {', '.join(after['throttle_reasons'])} "
                   f"(SM clock {after.get('sm_clock_mhz')} of {after.get('sm_clock_max_mhz')} MHz after)")
    return out
