"""The profiling harness: each variant of each example, in its own process, under each profiler.

- torch: torch.profiler's trace and key-averages table (profile_child.py), then HTA over the trace.
- ncu: Nsight Compute on the kernels inside the variant's NVTX range only, a small metric set by
  default, the GPU clocks left as they are (`--clock-control none`) unless asked otherwise.
- nsys: Nsight Systems on the cudaProfilerStart/Stop capture range, then `nsys stats` summaries.

A profiler that is missing, lacks permission for the GPU's counters, or cannot produce a report is
recorded as `unavailable: <reason>` and the sweep goes on; once a tool has shown it cannot work, the
remaining variants get the same reason without paying for another try. Every command is written to
command.json beside its logs, so any figure here can be reproduced by hand.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.device import REPO_ROOT
from harness.process import run_isolated, write_atomic
from harness.example import range_name

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
    return tools


# ------------------------------------------------------------------------------------ jobs and commands
@dataclass
class Settings:
    out_root: Path
    size: str
    device: str                       # "cpu" or "cuda", handed to every child
    seed: int
    tools: dict[str, Tool]
    iters: int = 3                    # calls in the nsys range; active steps for torch.profiler
    warmup: int = 3                   # calls before anything is profiled
    timeout: float = 600              # seconds per process
    ncu_set: str | None = None        # e.g. "full": ncu's section set on top of the metrics below
    ncu_metrics: tuple[str, ...] = NCU_METRICS
    launch_count: int = 40            # kernels ncu profiles per variant, at most
    clock_control: str = "none"       # none: leave the GPU's clocks as they are


@dataclass
class Job:
    example_id: str                   # "ch1/batched_matmul"
    path: Path
    variant: str
    role: str                         # baseline | optimized
    profiler: str
    title: str = ""

    def dir(self, root: Path) -> Path:
        return root / self.example_id / self.variant / self.profiler

    @property
    def range(self) -> str:
        return range_name(self.example_id, self.variant)


def _example_arg(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path.resolve())


def child_command(job: Job, s: Settings, mode: str, iters: int) -> list[str]:
    return [sys.executable, "-m", "harness.profile_child", _example_arg(job.path), "--example-id", job.example_id,
            "--variant", job.variant, "--size", s.size, "--device", s.device, "--seed", str(s.seed),
            "--mode", mode, "--iters", str(iters), "--warmup", str(s.warmup), "--out", str(job.dir(s.out_root))]


def ncu_metrics(s: Settings) -> tuple[list[str], list[str]]:
    return select_metrics(s.ncu_metrics, s.tools["ncu"].metrics if "ncu" in s.tools else None)


def commands(job: Job, s: Settings, metrics: list[str] | None = None) -> list[list[str]]:
    """Every command this job runs, in order: the profiled run first, then its post-processing."""
    d = job.dir(s.out_root)
    if job.profiler == "torch":
        return [child_command(job, s, "torch", s.iters),
                [sys.executable, str(REPO_ROOT / "tools" / "hta_summary.py"), str(d / "trace"), "--out", str(d / "hta")]]
    tool = s.tools[job.profiler].path or job.profiler
    if job.profiler == "ncu":
        metrics = ncu_metrics(s)[0] if metrics is None else metrics
        profile = [tool, "--profile-from-start", "off", "--nvtx", "--nvtx-include", f"{job.range}/",
                   "--clock-control", s.clock_control, "--launch-count", str(s.launch_count)]
        profile += ["--set", s.ncu_set] if s.ncu_set else []
        profile += ["--metrics", ",".join(metrics)] if metrics else []
        profile += ["--export", str(d / "report"), "--force-overwrite"] + child_command(job, s, "range", 1)
        return [profile, [tool, "--import", str(d / "report.ncu-rep"), "--csv", "--page", "raw", "--print-units", "base"]]
    if job.profiler == "nsys":
        profile = [tool, "profile", "--trace=cuda,nvtx,osrt", "--capture-range=cudaProfilerApi",
                   "--capture-range-end=stop", "--sample=none", "--cpuctxsw=none", "--force-overwrite=true",
                   "-o", str(d / "report")] + child_command(job, s, "range", s.iters)
        return [profile, [tool, "stats", "--report", NSYS_REPORTS, "--format", "csv", "--force-export=true",
                          "--output", str(d / "stats"), str(d / "report.nsys-rep")]]
    raise ValueError(f"unknown profiler {job.profiler!r}")


# ------------------------------------------------------------------------------------------- running
def run_logged(cmd: list[str], d: Path, timeout: float, stdout_to: Path | None = None) -> tuple[int | None, str]:
    """Run one command, appending to d/stdout.log and d/stderr.log; (exit code or None on timeout, its output)."""
    d.mkdir(parents=True, exist_ok=True)
    logs = [d / "stdout.log", d / "stderr.log"]
    starts = []
    for log in logs:
        with open(log, "a") as f:
            f.write(f"$ {shlex.join(cmd)}\n")
            starts.append(f.tell())
    with open(stdout_to or logs[0], "w" if stdout_to else "a") as out, open(logs[1], "a") as err:
        try:
            rc = run_isolated(cmd, timeout=timeout, stdout=out, stderr=err)
        except OSError as exc:
            err.write(f"could not start: {exc}\n")
            return 127, str(exc)
    text = ""
    for log, start in zip(logs, starts, strict=True):
        with open(log, errors="replace") as f:
            f.seek(start)
            text += f.read()
    if stdout_to:
        text += stdout_to.read_text(errors="replace")[:20000]
    return rc, text


def _last_line(text: str, pattern: str = "") -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("$ ") and pattern in ln]
    return lines[-1][:300] if lines else ""


def _child_result(d: Path) -> dict | None:
    try:
        return json.loads((d / "child.json").read_text())
    except (OSError, ValueError):
        return None


def _load_tool_module(name: str):
    """tools/ holds command-line scripts, not a package: load one by its path."""
    spec = importlib.util.spec_from_file_location(f"aisp_tools_{name}", REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Profiling:
    """Runs jobs; remembers a tool that turned out unusable so the rest of the sweep does not retry it."""
    settings: Settings
    gone: dict[str, str] = field(default_factory=dict)

    def unavailable_reason(self, profiler: str) -> str | None:
        tool = self.settings.tools.get(profiler)
        return self.gone.get(profiler) or (tool.reason if tool else "not asked for")

    def run(self, job: Job) -> dict:
        d = job.dir(self.settings.out_root)
        d.mkdir(parents=True, exist_ok=True)
        cmds = commands(job, self.settings)
        record = {"example": job.example_id, "variant": job.variant, "role": job.role, "profiler": job.profiler,
                  "range": job.range, "commands": [shlex.join(c) for c in cmds], "argv": cmds, "cwd": str(REPO_ROOT),
                  "timeout_s": self.settings.timeout, "size": self.settings.size, "seed": self.settings.seed}
        if job.profiler == "ncu":
            record.update(clock_control=self.settings.clock_control, launch_count=self.settings.launch_count,
                          ncu_set=self.settings.ncu_set, metrics_dropped=ncu_metrics(self.settings)[1])
        reason = self.unavailable_reason(job.profiler)
        if reason:
            result = {"status": "unavailable", "reason": reason, "metrics": {}}
        else:
            (d / "command.json").write_text(json.dumps(record, indent=1) + "\n")
            try:
                result = getattr(self, f"_run_{job.profiler}")(job, d, cmds, record)
            except Exception as exc:  # a bug in post-processing must not end the sweep
                result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0][:300], "metrics": {}}
        result = {"profiler": job.profiler, **result}
        if job.profiler == "ncu":
            result["clock_control"] = self.settings.clock_control
        (d / "command.json").write_text(json.dumps({**record, "ran": reason is None}, indent=1) + "\n")
        (d / "status.json").write_text(json.dumps(result, indent=1) + "\n")
        return result

    def _run_child(self, cmd: list[str], d: Path, stdout_to: Path | None = None) -> tuple[int | None, str, dict]:
        (d / "child.json").unlink(missing_ok=True)  # never read a previous run's answer
        rc, text = run_logged(cmd, d, self.settings.timeout, stdout_to)
        if rc is None:
            return rc, text, {"status": "failed", "reason": f"no result within {self.settings.timeout:g} s (killed)"}
        child = _child_result(d)
        if child is None:
            why = f"exited with code {rc} before writing child.json: {_last_line(text)}"
            return rc, text, {"status": "failed", "reason": why}
        return rc, text, child

    def _run_torch(self, job: Job, d: Path, cmds: list[list[str]], record: dict) -> dict:
        _, _, child = self._run_child(cmds[0], d)
        if child["status"] != "ok":
            return {"status": child["status"], "reason": child["reason"], "metrics": {}}
        metrics = summarize_torch_trace(d / "trace" / "trace.json", job.range)
        rc, text = run_logged(cmds[1], d, self.settings.timeout)
        try:
            hta = json.loads((d / "hta" / "hta_summary.json").read_text())
            metrics["hta"] = "ok" if hta["status"] == "ok" else f"{hta['status']}: {hta['reason']}"
            metrics.update({f"hta_{k}": v for k, v in hta.get("headline", {}).items() if isinstance(v, (int, float))})
        except (OSError, ValueError, KeyError):
            metrics["hta"] = f"failed: hta_summary.py exited with code {rc}: {_last_line(text)}"
        return {"status": "ok", "reason": "", "metrics": metrics,
                "artifacts": ["trace/trace.json", "key_averages.txt", "hta/hta_summary.json"]}

    def _run_ncu(self, job: Job, d: Path, cmds: list[list[str]], record: dict) -> dict:
        rc, text, child = self._run_child(cmds[0], d)
        errors = "\n".join(ln for ln in text.splitlines() if "==ERROR==" in ln)
        bad = [m for m in self.settings.ncu_metrics if m.split(".")[0] in errors]
        if bad and rc not in (None, 0):  # a metric this GPU lacks: drop it and try once more
            kept = [m for m in ncu_metrics(self.settings)[0] if m not in bad]
            cmds = commands(job, self.settings, kept)
            record.update(argv=cmds, commands=[shlex.join(c) for c in cmds],
                          metrics_dropped=record["metrics_dropped"] + bad)
            rc, text, child = self._run_child(cmds[0], d)
        if "ERR_NVGPUCTRPERM" in text:
            self.gone["ncu"] = "no permission to read the GPU's performance counters (ERR_NVGPUCTRPERM)"
            return {"status": "unavailable", "reason": self.gone["ncu"], "metrics": {}}
        if child["status"] != "ok":
            ncu_error = _last_line(text, "==ERROR==") if not (d / "child.json").exists() else ""
            return {"status": child["status"], "reason": ncu_error or child["reason"], "metrics": {}}
        report = d / "report.ncu-rep"
        if not report.exists():
            if "No kernels were profiled" in text or rc == 0:
                why = child.get("profiler_api") or "ncu profiles kernels only: a copy is not one"
                return {"status": "ok", "reason": f"no kernels were profiled in NVTX range {job.range} ({why})",
                        "metrics": {"kernels": 0}}
            why = _last_line(text, "==ERROR==") or _last_line(text)
            return {"status": "failed", "reason": f"ncu exited with code {rc}: {why}", "metrics": {}}
        rc, text = run_logged(cmds[1], d, self.settings.timeout, stdout_to=d / "metrics.csv")
        if rc != 0:
            return {"status": "failed", "reason": f"ncu --import exited with code {rc}: {_last_line(text)}", "metrics": {}}
        extracted = _load_tool_module("extract_ncu_metrics").extract((d / "metrics.csv").read_text(errors="replace"))
        (d / "metrics.json").write_text(json.dumps(extracted, indent=1) + "\n")
        metrics = {k: v for k, v in extracted["summary"].items() if k != "top_kernels"}
        metrics["top_kernel"] = (extracted["summary"]["top_kernels"] or [{"name": None}])[0]["name"]
        return {"status": "ok", "reason": "", "metrics": metrics,
                "artifacts": ["report.ncu-rep", "metrics.csv", "metrics.json"]}

    def _run_nsys(self, job: Job, d: Path, cmds: list[list[str]], record: dict) -> dict:
        rc, text, child = self._run_child(cmds[0], d)
        report = d / "report.nsys-rep"
        if not report.exists():
            if child["status"] == "failed" and (d / "child.json").exists():  # the example failed, not nsys
                return {"status": "failed", "reason": child["reason"], "metrics": {}}
            if sorted(d.glob("*.qdstrm")) or ".qdstrm" in text:
                why = _last_line(text, "Importer") or "no QdstrmImporter"
                self.gone["nsys"] = f"nsys wrote a .qdstrm but could not import it ({why})"
            else:
                self.gone["nsys"] = f"nsys produced no report (exit code {rc}): {_last_line(text)}"
            return {"status": "unavailable", "reason": self.gone["nsys"], "metrics": {}}
        if child["status"] != "ok":
            return {"status": child["status"], "reason": child["reason"], "metrics": {}}
        rc, text = run_logged(cmds[1], d, self.settings.timeout)
        extracted = _load_tool_module("extract_nsys_summary").extract(d / "stats")
        if not extracted["reports"]:
            self.gone["nsys"] = f"nsys stats wrote no CSV (exit code {rc}): {_last_line(text)}"
            return {"status": "unavailable", "reason": self.gone["nsys"], "metrics": {}}
        (d / "nsys_summary.json").write_text(json.dumps(extracted, indent=1) + "\n")
        summary = extracted["summary"]
        metrics = {k: v for k, v in summary.items() if not isinstance(v, list)}
        metrics["top_kernel"] = (summary["top_kernels"] or [{"name": None}])[0]["name"]
        return {"status": "ok", "reason": "", "metrics": metrics, "artifacts": ["report.nsys-rep", "nsys_summary.json"]}


# ------------------------------------------------------------------------------------------- summary
def summarize_torch_trace(trace: Path, range_name: str | None = None) -> dict:
    """Per profiled step: GPU kernel time and count, copies, and the CPU wall time of the variant's range."""
    events = [e for e in json.loads(trace.read_text()).get("traceEvents", []) if e.get("ph") == "X"]
    steps = max(1, sum(1 for e in events if str(e.get("name", "")).startswith("ProfilerStep#")))
    by_cat: dict[str, list[float]] = {}
    for e in events:
        by_cat.setdefault(e.get("cat", ""), []).append(float(e.get("dur", 0)))
    ranges = [float(e.get("dur", 0)) for e in events if e.get("cat") == "user_annotation"
              and (e.get("name") == range_name if range_name else str(e.get("name", "")).startswith("aisp."))]
    kernels = by_cat.get("kernel", [])
    copies = by_cat.get("gpu_memcpy", []) + by_cat.get("gpu_memset", [])
    memcpy = [e for e in events if e.get("cat") == "gpu_memcpy"]
    copied = sum(float((e.get("args") or {}).get("bytes", 0)) for e in memcpy)
    copy_us = sum(float(e.get("dur", 0)) for e in memcpy)
    return {
        "steps": steps,
        "cpu_ms_per_step": sum(ranges) / len(ranges) / 1e3 if ranges else None,
        "kernels_per_step": len(kernels) / steps,
        "kernel_ms_per_step": sum(kernels) / steps / 1e3 if kernels else None,
        "copies_per_step": len(copies) / steps,
        "copy_ms_per_step": sum(copies) / steps / 1e3 if copies else None,
        "copy_gbps": copied / copy_us / 1e3 if copied and copy_us else None,  # bytes per us / 1e3 = GB/s
    }


def add_to_summary(summary: dict, job: Job, result: dict) -> None:
    ex = next((e for e in summary["examples"] if e["id"] == job.example_id), None)
    if ex is None:
        ex = {"id": job.example_id, "title": job.title, "status": "ok", "reason": "", "variants": []}
        summary["examples"].append(ex)
    var = next((v for v in ex["variants"] if v["name"] == job.variant), None)
    if var is None:
        var = {"name": job.variant, "role": job.role, "profilers": {}}
        ex["variants"].append(var)
    var["profilers"][job.profiler] = {**result, "dir": str(Path(job.example_id) / job.variant / job.profiler)}


def _fmt(x, fmt: str = ".3g") -> str:
    return "-" if x is None else (format(x, fmt) if isinstance(x, (int, float)) else str(x))


COLUMNS = {
    "torch": [("kernel ms/step", "kernel_ms_per_step"), ("kernels/step", "kernels_per_step"),
              ("copy ms/step", "copy_ms_per_step"), ("copy GB/s", "copy_gbps"), ("CPU ms/step", "cpu_ms_per_step"),
              ("GPU idle % (HTA)", "hta_idle_pct"), ("HTA", "hta")],
    "ncu": [("kernels", "kernels"), ("GPU time ms", "gpu_time_ms"), ("DRAM %", "dram_pct"), ("SM %", "sm_pct"),
            ("occupancy %", "occupancy_pct"), ("L2 hit %", "l2_hit_pct"), ("tensor %", "tensor_pct")],
    "nsys": [("kernel ms", "kernel_time_ms"), ("kernels", "kernel_instances"), ("copy ms", "memcpy_time_ms"),
             ("CUDA API ms", "cuda_api_time_ms"), ("top kernel", "top_kernel")],
}
TITLES = {"torch": "PyTorch profiler (per profiled step)",
          "ncu": "Nsight Compute (kernels in the variant's NVTX range; %: duration-weighted over those kernels)",
          "nsys": "Nsight Systems (the cudaProfilerStart/Stop range)"}


def summary_markdown(summary: dict) -> str:
    from harness.report import markdown_table
    run = summary["run"]
    lines = [f"# Profiling: {run['device'].get('name')}", "",
             f"- started {run['started_at']}, git {run.get('git_sha')}, size `{run['size']}`, seed {run['seed']}, "
             f"torch {run['versions']['torch']}",
             f"- ncu clock control `{run['clock_control']}`, at most {run['launch_count']} kernels per variant"]
    lines += [f"- {name}: {desc}" for name, desc in run["tools"].items()] + [""]
    for profiler in run["profilers"]:
        rows, reasons, notes = [], set(), set()
        for ex in summary["examples"]:
            for v in ex["variants"]:
                res = v["profilers"].get(profiler)
                if res is None:
                    continue
                reasons.add(res.get("reason", "") if res["status"] == "unavailable" else None)
                status = res["status"] + (f": {res['reason'][:90]}" if res.get("reason") else "")
                cells = [_fmt(res["metrics"].get(key))[:60] for _, key in COLUMNS[profiler]]
                if profiler == "torch" and res["metrics"].get("hta"):  # the word in the table, the reason below it
                    cells[-1], _, why = res["metrics"]["hta"].partition(": ")
                    if why:
                        notes.add(f"HTA {cells[-1]}: {why}")
                rows.append([ex["id"], v["name"], v["role"], status] + cells)
        lines += [f"## {TITLES[profiler]}", ""]
        if len(reasons) == 1 and None not in reasons:  # one reason for every row: say it once
            lines += [f"Unavailable: {reasons.pop()}", ""]
        else:
            lines += [markdown_table(["example", "variant", "role", "status"] + [c for c, _ in COLUMNS[profiler]], rows), ""]
            lines += [f"- {n}" for n in sorted(notes)] + ([""] if notes else [])
    other = [f"- {ex['id']}: {ex['status']}: {ex['reason']}" for ex in summary["examples"] if ex["status"] != "ok"]
    return "\n".join(lines + other) + "\n"


def write_summary(out_root: Path, summary: dict) -> None:
    for name, text in (("summary.json", json.dumps(summary, indent=1)), ("summary.md", summary_markdown(summary))):
        write_atomic(out_root / name, text + ("\n" if not text.endswith("\n") else ""))
