"""Cluster telemetry: find the sick GPU in per-GPU traces, with a detector simple enough to explain.

    python -m ch20.telemetry_anomalies [--gpus 16] [--steps 600] [--seeds 5] [--json OUT]      # synthetic
    python -m ch20.telemetry_anomalies --nvml 30 [--load-gemm] [--csv OUT.csv] [--json OUT]  # this machine
    python -m ch20.telemetry_anomalies --read TRACE.csv [--json OUT]                            # a recorded one

A trace is per GPU and per sample: temperature (C), power (W), SM clock (MHz), cumulative ECC and NVLink
error counters, and the step time of the GPU's own work (ms; the time before it waits in a collective,
since after the all-reduce every GPU shows the slowest one's time). The synthetic cluster is seeded and
has three injected faults: a GPU that throttles (heats up, its clock drops, its steps slow), a straggler
(steps slow with clocks and temperature normal: a bad host, a slow link, a noisy neighbour) and an
XID-like burst of error-counter increments.

The detector, per sample:
- peers: robust z-score of each metric against the other GPUs at the same moment,
  z = (x - median) / (1.4826 MAD + floor); |z| > 4 for 5 samples in a row is an outlier (MAD, not the
  standard deviation, so one sick GPU cannot hide by inflating the spread);
- its own past: an EWMA baseline of the clock (alpha 0.05) for a single GPU that has no peers;
- counters: any increment of an error counter (ECC, NVLink) within a window.
Classification: a slow clock with high temperature or power -> "throttling"; slow steps with a normal
clock -> "straggler"; counter increments -> "error_burst". Scored by precision and recall against the
injected faults (a detection matches a fault of the same kind on the same GPU overlapping its window).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

METRICS = ("temp_c", "power_w", "sm_clock_mhz", "ecc_errors", "nvlink_errors", "step_ms")
Z_THRESHOLD, PERSIST, EWMA_ALPHA = 4.0, 5, 0.05
FLOORS = {"temp_c": 1.0, "power_w": 10.0, "sm_clock_mhz": 15.0, "step_ms": 2.0}   # noise below these is not news


def synthetic(gpus: int = 16, steps: int = 600, seed: int = 0, inject: bool = True) -> tuple[dict, list[dict]]:
    """A healthy cluster plus (with `inject`) three faults on distinct random GPUs at random times; (trace, faults)."""
    rng = np.random.default_rng(seed)
    shape = (gpus, steps)
    t = {"temp_c": 65 + 3 * rng.standard_normal((gpus, 1)) + rng.normal(0, 0.7, shape),
         "power_w": 640 + rng.normal(0, 12, shape),
         "sm_clock_mhz": 1830 + rng.normal(0, 8, shape),
         "ecc_errors": np.zeros(shape), "nvlink_errors": np.zeros(shape),
         "step_ms": 100 + rng.normal(0, 1.0, shape)}
    bad = rng.choice(gpus, size=3, replace=False)
    faults = []
    if not inject:
        return t, faults
    # throttling: temperature climbs past 85 C, the clock steps down, power falls, the step slows with the clock
    g, t0 = int(bad[0]), int(rng.integers(steps // 5, steps // 2))
    ramp = np.clip((np.arange(steps) - t0) / 40.0, 0, 1)
    t["temp_c"][g] += 25 * ramp
    t["sm_clock_mhz"][g] -= 450 * ramp
    t["power_w"][g] -= 120 * ramp
    t["step_ms"][g] *= 1 + 0.3 * ramp
    faults.append({"gpu": g, "kind": "throttling", "start": t0, "end": steps - 1})
    # straggler: slow steps only, for a window
    g, t0 = int(bad[1]), int(rng.integers(steps // 5, steps // 2))
    t1 = t0 + int(rng.integers(60, 150))
    t["step_ms"][g, t0:t1] *= 1.25
    faults.append({"gpu": g, "kind": "straggler", "start": t0, "end": t1 - 1})
    # an XID-like burst: error counters jump over a few samples
    g, t0 = int(bad[2]), int(rng.integers(steps // 5, steps - 40))
    burst = np.zeros(steps)
    burst[t0:t0 + 10] = rng.integers(1, 5, 10)
    t["ecc_errors"][g] = np.cumsum(burst)
    t["nvlink_errors"][g] = np.cumsum(np.roll(burst, 2) * 3)
    faults.append({"gpu": g, "kind": "error_burst", "start": t0, "end": t0 + 11})
    return t, faults


def robust_z(x: np.ndarray, floor: float) -> np.ndarray:
    """Per sample (column), each GPU's distance from the others' median in MAD units."""
    med = np.median(x, axis=0, keepdims=True)
    mad = np.median(np.abs(x - med), axis=0, keepdims=True)
    return (x - med) / (1.4826 * mad + floor)


def persistent(mask: np.ndarray, k: int = PERSIST) -> np.ndarray:
    """True where the mask has held for the last k samples."""
    run = np.zeros(mask.shape, dtype=int)
    for i in range(mask.shape[1]):
        run[:, i] = np.where(mask[:, i], (run[:, i - 1] if i else 0) + 1, 0)
    return run >= k


def ewma_drop(x: np.ndarray, alpha: float = EWMA_ALPHA, drop: float = 0.08) -> np.ndarray:
    """Each GPU against its own smoothed past: True where the value is `drop` below the baseline."""
    base = np.empty_like(x, dtype=float)
    base[:, 0] = x[:, 0]
    for i in range(1, x.shape[1]):
        base[:, i] = (1 - alpha) * base[:, i - 1] + alpha * x[:, i - 1]
    return x < (1 - drop) * base


def _events(mask: np.ndarray, kind: str, why: str) -> list[dict]:
    out = []
    for g in range(mask.shape[0]):
        idx = np.flatnonzero(mask[g])
        if idx.size == 0:
            continue
        starts = [idx[0]] + [b for a, b in zip(idx[:-1], idx[1:], strict=True) if b - a > 10]
        for s in starts:
            seg = idx[(idx >= s)]
            gaps = np.flatnonzero(np.diff(seg) > 10)
            end = seg[gaps[0]] if gaps.size else seg[-1]
            out.append({"gpu": g, "kind": kind, "start": int(s), "end": int(end), "why": why})
    return out


def detect(trace: dict) -> list[dict]:
    gpus = trace["sm_clock_mhz"].shape[0]
    events = []
    if gpus >= 3:
        z = {m: robust_z(trace[m], FLOORS[m]) for m in FLOORS}
        slow_clock = persistent(z["sm_clock_mhz"] < -Z_THRESHOLD)
        hot = (z["temp_c"] > Z_THRESHOLD) | (z["power_w"] < -Z_THRESHOLD) | (z["power_w"] > Z_THRESHOLD)
        slow_step = persistent(z["step_ms"] > Z_THRESHOLD)
        events += _events(slow_clock & hot, "throttling", "clock below its peers' with temperature or power off")
        events += _events(slow_step & ~persistent(z["sm_clock_mhz"] < -Z_THRESHOLD / 2, 1), "straggler",
                          "step time above its peers' with a normal clock")
    else:   # no peers: each GPU against its own past
        under_load = trace["power_w"] > 0.5 * np.max(trace["power_w"])
        events += _events(persistent(ewma_drop(trace["sm_clock_mhz"]) & under_load), "throttling",
                          "clock 8% below its own recent average while under load")
    rising = np.zeros_like(trace["ecc_errors"], dtype=bool)
    for m in ("ecc_errors", "nvlink_errors"):
        rising[:, 1:] |= np.diff(trace[m], axis=1) > 0
    events += _events(rising, "error_burst", "an error counter increased")
    return events


def score(events: list[dict], faults: list[dict]) -> dict:
    def match(e, f):
        return e["gpu"] == f["gpu"] and e["kind"] == f["kind"] and e["start"] <= f["end"] and f["start"] <= e["end"]
    tp_events = sum(any(match(e, f) for f in faults) for e in events)
    found = sum(any(match(e, f) for e in events) for f in faults)
    delays = [min(e["start"] for e in events if match(e, f)) - f["start"] for f in faults
              if any(match(e, f) for e in events)]
    return {"precision": tp_events / len(events) if events else 1.0, "recall": found / len(faults) if faults else 1.0,
            "events": len(events), "faults": len(faults), "detection_delay_samples": delays}


def evaluate(gpus: int = 16, steps: int = 600, seeds=range(5)) -> dict:
    runs = []
    for s in seeds:
        trace, faults = synthetic(gpus, steps, s)
        events = detect(trace)
        runs.append({"seed": s, **score(events, faults), "faults_injected": faults, "detected": events})
    return {"gpus": gpus, "steps": steps, "runs": runs,
            "precision": float(np.mean([r["precision"] for r in runs])),
            "recall": float(np.mean([r["recall"] for r in runs]))}


def sample_nvml(seconds: float, interval: float = 0.1, load_gemm: bool = False) -> dict:
    """Real samples from every GPU here (nvidia-ml-py); step_ms is absent (there is no training step)."""
    import pynvml as nv
    nv.nvmlInit()
    try:
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        rows = {m: [[] for _ in handles] for m in (*METRICS, "throttle_reasons", "t_s")}
        stop_load = _start_gemm_load() if load_gemm else None
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < seconds:
                for i, h in enumerate(handles):
                    rows["t_s"][i].append(time.monotonic() - t0)
                    rows["temp_c"][i].append(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
                    rows["power_w"][i].append(nv.nvmlDeviceGetPowerUsage(h) / 1000)
                    rows["sm_clock_mhz"][i].append(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))
                    rows["ecc_errors"][i].append(_safe(lambda h=h: nv.nvmlDeviceGetTotalEccErrors(
                        h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC)))
                    rows["nvlink_errors"][i].append(0)   # per-link counters: vendor tools (DCGM) read these
                    rows["step_ms"][i].append(float("nan"))
                    reasons = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
                        nv.nvmlDeviceGetCurrentClocksThrottleReasons     # the older name
                    rows["throttle_reasons"][i].append(_safe(lambda h=h, f=reasons: f(h)))
                time.sleep(interval)
        finally:
            if stop_load:
                stop_load()
        return {m: np.array(v, dtype=float) for m, v in rows.items()}
    finally:
        nv.nvmlShutdown()


def _safe(fn):
    try:
        return fn()
    except Exception:   # not supported on this part or driver
        return 0


def _start_gemm_load():
    """A sustained bf16 GEMM on every GPU, in a thread (after a 3 s idle lead-in, so the trace shows both)."""
    import threading

    import torch
    stop = threading.Event()

    def work():
        time.sleep(3)
        mats = [(torch.randn(8192, 8192, device=f"cuda:{i}", dtype=torch.bfloat16),) * 2
                for i in range(torch.cuda.device_count())]
        while not stop.is_set():
            for a, b in mats:
                a @ b
            torch.cuda.synchronize()
    th = threading.Thread(target=work, daemon=True)
    th.start()

    def halt():
        stop.set()
        th.join(timeout=30)
    return halt


def write_csv(trace: dict, path: Path) -> None:
    keys = [k for k in trace if k in METRICS or k in ("t_s", "throttle_reasons")]
    gpus, steps = trace["sm_clock_mhz"].shape
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["gpu", "sample", *keys])
        for g in range(gpus):
            for s in range(steps):
                w.writerow([g, s, *(trace[k][g, s] for k in keys)])


def read_csv(path: Path) -> dict:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"gpu", "sample", "sm_clock_mhz"} <= set(rows[0]):
        raise ValueError(f"{path}: not a telemetry trace (needs gpu, sample and the metric columns)")
    gpus, steps = 1 + max(int(r["gpu"]) for r in rows), 1 + max(int(r["sample"]) for r in rows)
    keys = [k for k in rows[0] if k not in ("gpu", "sample")]
    trace = {k: np.zeros((gpus, steps)) for k in keys}
    for r in rows:
        for k in keys:
            trace[k][int(r["gpu"]), int(r["sample"])] = float(r[k] or "nan")
    for m in METRICS:
        trace.setdefault(m, np.zeros((gpus, steps)))
    return trace


def main(argv: list[str] | None = None) -> int:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"ch20.telemetry_anomalies: {message}", file=sys.stderr)
            sys.exit(2)

    p = Parser(prog="python -m ch20.telemetry_anomalies", description=__doc__.splitlines()[0])
    p.add_argument("--gpus", type=int, default=16)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--nvml", type=float, metavar="SECONDS", help="sample this machine's GPUs for this long")
    p.add_argument("--load-gemm", action="store_true", help="with --nvml: a sustained GEMM after 3 s idle")
    p.add_argument("--read", type=Path, metavar="TRACE.csv")
    p.add_argument("--csv", type=Path, help="write the sampled trace here")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.gpus < 3 or args.steps < 100 or args.seeds < 1:
        p.error("--gpus must be at least 3, --steps at least 100, --seeds at least 1")
    if args.read is not None and not args.read.is_file():
        p.error(f"no trace file {args.read}")
    if args.nvml is not None:
        try:
            import pynvml  # noqa: F401
            trace = sample_nvml(args.nvml, load_gemm=args.load_gemm)
        except Exception as exc:
            print(f"ch20.telemetry_anomalies: cannot sample NVML: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        if args.csv:
            write_csv(trace, args.csv)
    elif args.read is not None:
        try:
            trace = read_csv(args.read)
        except ValueError as exc:
            p.error(str(exc))
    else:
        result = evaluate(args.gpus, args.steps, range(args.seeds))
        for r in result["runs"]:
            print(f"seed {r['seed']}: precision {r['precision']:.2f}, recall {r['recall']:.2f}, {r['events']} events "
                  f"for {r['faults']} faults, delays {r['detection_delay_samples']} samples")
        print(f"mean precision {result['precision']:.2f}, mean recall {result['recall']:.2f} "
              f"({args.gpus} GPUs x {args.steps} samples, {args.seeds} seeds)")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        return 0
    events = detect(trace)
    clocks = trace["sm_clock_mhz"]
    summary = {"gpus": int(clocks.shape[0]), "samples": int(clocks.shape[1]), "events": events,
               "sm_clock_mhz": {"min": float(np.min(clocks)), "max": float(np.max(clocks)),
                                "median": float(np.median(clocks))},
               "power_w_max": float(np.max(trace["power_w"])), "temp_c_max": float(np.max(trace["temp_c"]))}
    if "throttle_reasons" in trace:
        summary["throttle_reason_masks_seen"] = sorted({int(x) for x in np.unique(trace["throttle_reasons"])})
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
