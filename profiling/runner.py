"""Each variant of each example, in its own process, under each profiler.

- torch: torch.profiler's figures and key-averages table (profiling/child.py), a trimmed trace, then
  HTA over it where HTA is installed (profiling/hta_summary.py).
- ncu: Nsight Compute on the first `launch_count` kernels inside the variant's NVTX range (after
  `launch_skip`), a small metric set by default, the GPU clocks left as they are
  (`--clock-control none`) unless asked otherwise.
- nsys: Nsight Systems on the cudaProfilerStart/Stop capture range, then `nsys stats` summaries.

A profiler that is missing, lacks permission for the GPU's counters, or cannot produce a report is
recorded as `unavailable: <reason>` and the run goes on; once a tool has shown it cannot work, the
remaining variants get the same reason without paying for another try. Every command is written to
command.json beside its logs, so any figure here can be reproduced by hand. What a job leaves on disk
is bounded: traces are trimmed, and files nothing can read (a .qdstrm that nsys could not import)
or that a tool recreates at will (nsys's .sqlite export) are deleted, each said in the job's status.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.device import REPO_ROOT
from harness.example import range_name
from harness.process import run_isolated
from profiling import ncu_metrics, nsys_summary, torch_trace
from profiling.tools import NCU_METRICS, NSYS_REPORTS, Tool, select_metrics

PROFILE_SIZE = "small"     # on a GPU: every chapter in minutes; `--size full` for the book's figures
CPU_SIZE = "tiny"          # on the CPU, where the examples run at tiny size


def hta_installed() -> bool:
    """HTA is optional (it is not on every GPU machine): traces can be analysed later, elsewhere."""
    return importlib.util.find_spec("hta") is not None


@dataclass
class Settings:
    out_root: Path
    size: str
    device: str                       # "cpu" or "cuda", handed to every child
    seed: int
    tools: dict[str, Tool]
    iters: int = 3                    # calls in the nsys range; active steps for torch.profiler
    warmup: int = 2                   # calls before anything is profiled
    iter_budget: float = 2.0          # seconds of profiled calls per process, at most (one call always)
    timeout: float = 300              # seconds per process
    ncu_set: str | None = None        # e.g. "full": ncu's section set on top of the metrics below
    ncu_metrics: tuple[str, ...] = NCU_METRICS
    launch_count: int = 8             # kernels ncu profiles per variant, at most
    launch_skip: int = 0              # kernels in the range ncu lets pass before those
    clock_control: str = "none"       # none: leave the GPU's clocks as they are
    trace_max_events: int = torch_trace.MAX_EVENTS
    hta: bool = False                 # run HTA over each trace (where it is installed)


@dataclass
class Job:
    example_id: str                   # "ch1/batched_matmul"
    path: Path
    variant: str
    role: str                         # baseline | optimized | reference
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
    cmd = [sys.executable, "-m", "profiling.child", _example_arg(job.path), "--example-id", job.example_id,
           "--variant", job.variant, "--size", s.size, "--device", s.device, "--seed", str(s.seed),
           "--mode", mode, "--iters", str(iters), "--warmup", str(s.warmup), "--iter-budget", f"{s.iter_budget:g}"]
    if mode == "torch":
        cmd += ["--trace-max-events", str(s.trace_max_events)]
    return cmd + ["--out", str(job.dir(s.out_root))]


def ncu_metric_list(s: Settings) -> tuple[list[str], list[str]]:
    return select_metrics(s.ncu_metrics, s.tools["ncu"].metrics if "ncu" in s.tools else None)


def commands(job: Job, s: Settings, metrics: list[str] | None = None) -> list[list[str]]:
    """Every command this job runs, in order: the profiled run first, then its post-processing."""
    d = job.dir(s.out_root)
    if job.profiler == "torch":
        hta = [[sys.executable, "-m", "profiling.hta_summary", str(d / "trace"), "--out", str(d / "hta")]]
        return [child_command(job, s, "torch", s.iters)] + (hta if s.hta else [])
    tool = s.tools[job.profiler].path or job.profiler
    if job.profiler == "ncu":
        metrics = ncu_metric_list(s)[0] if metrics is None else metrics
        profile = [tool, "--profile-from-start", "off", "--nvtx", "--nvtx-include", f"{job.range}/",
                   "--clock-control", s.clock_control, "--launch-skip", str(s.launch_skip),
                   "--launch-count", str(s.launch_count)]
        profile += ["--set", s.ncu_set] if s.ncu_set else []
        profile += ["--metrics", ",".join(metrics)] if metrics else []
        # One call holds the kernels to profile unless some are to be skipped first.
        calls = 1 if s.launch_skip == 0 else s.iters
        profile += ["--export", str(d / "report"), "--force-overwrite"] + child_command(job, s, "range", calls)
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


def disk_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) if d.exists() else 0


def _mb(n: int) -> str:
    return f"{n / 1e6:.3g} MB"


def delete_files(paths: list[Path]) -> str:
    """Delete these files; what was deleted, in words ('' when nothing)."""
    gone = []
    for p in dict.fromkeys(paths):
        try:
            size = p.stat().st_size
            p.unlink()
        except OSError:
            continue
        gone.append(f"{p.name} ({_mb(size)})")
    return ", ".join(gone)


def qdstrm_files(d: Path, log: str) -> list[Path]:
    """The .qdstrm raw streams this job left: in its folder, and those its log names in the temp folder."""
    named = [Path(m) for m in re.findall(r"""['"]?(/\S+?\.qdstrm)\b""", log)]
    tmp = Path(tempfile.gettempdir()).resolve()
    ours = [p for p in named if p.parent.resolve() == tmp and p.name.startswith("nsys-report-")]
    return sorted(d.glob("*.qdstrm")) + ours


@dataclass
class Profiling:
    """Runs jobs; remembers a tool that turned out unusable so the rest of the run does not retry it."""
    settings: Settings
    gone: dict[str, str] = field(default_factory=dict)

    def unavailable_reason(self, profiler: str) -> str | None:
        tool = self.settings.tools.get(profiler)
        return self.gone.get(profiler) or (tool.reason if tool else "not asked for")

    def run(self, job: Job) -> dict:
        t0 = time.monotonic()
        d = job.dir(self.settings.out_root)
        d.mkdir(parents=True, exist_ok=True)
        cmds = commands(job, self.settings)
        record = {"example": job.example_id, "variant": job.variant, "role": job.role, "profiler": job.profiler,
                  "range": job.range, "commands": [shlex.join(c) for c in cmds], "argv": cmds, "cwd": str(REPO_ROOT),
                  "timeout_s": self.settings.timeout, "size": self.settings.size, "seed": self.settings.seed}
        if job.profiler == "ncu":
            record.update(clock_control=self.settings.clock_control, launch_count=self.settings.launch_count,
                          launch_skip=self.settings.launch_skip, ncu_set=self.settings.ncu_set,
                          metrics_dropped=ncu_metric_list(self.settings)[1])
        reason = self.unavailable_reason(job.profiler)
        if reason:
            result = {"status": "unavailable", "reason": reason, "metrics": {}}
        else:
            (d / "command.json").write_text(json.dumps(record, indent=1) + "\n")
            try:
                result = getattr(self, f"_run_{job.profiler}")(job, d, cmds, record)
            except Exception as exc:  # a bug in post-processing must not end the run
                result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0][:300], "metrics": {}}
        result = {"profiler": job.profiler, **result}
        if job.profiler == "ncu":
            result["clock_control"] = self.settings.clock_control
        (d / "command.json").write_text(json.dumps({**record, "ran": reason is None}, indent=1) + "\n")
        result.update(wall_s=round(time.monotonic() - t0, 2), disk_bytes=disk_bytes(d))
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
        metrics = child.get("trace_metrics") or torch_trace.summarize_torch_trace(d / "trace" / "trace.json", job.range)
        metrics["trace"] = torch_trace.describe_trim(child.get("trim"))
        if child.get("iters_capped_from"):
            metrics["steps_capped_from"] = child["iters_capped_from"]
        artifacts = ["trace/trace.json", "key_averages.txt"]
        if len(cmds) < 2:
            metrics["hta"] = "unavailable: HTA is not installed here (`python -m profiling.hta_summary DIR/trace` elsewhere)"
        else:
            rc, text = run_logged(cmds[1], d, self.settings.timeout)
            try:
                hta = json.loads((d / "hta" / "hta_summary.json").read_text())
                metrics["hta"] = "ok" if hta["status"] == "ok" else f"{hta['status']}: {hta['reason']}"
                metrics.update({f"hta_{k}": v for k, v in hta.get("headline", {}).items() if isinstance(v, (int, float))})
                artifacts.append("hta/hta_summary.json")
            except (OSError, ValueError, KeyError):
                metrics["hta"] = f"failed: hta_summary exited with code {rc}: {_last_line(text)}"
        return {"status": "ok", "reason": "", "metrics": metrics, "trim": child.get("trim"), "artifacts": artifacts}

    def _run_ncu(self, job: Job, d: Path, cmds: list[list[str]], record: dict) -> dict:
        rc, text, child = self._run_child(cmds[0], d)
        errors = "\n".join(ln for ln in text.splitlines() if "==ERROR==" in ln)
        bad = [m for m in self.settings.ncu_metrics if m.split(".")[0] in errors]
        if bad and rc not in (None, 0):  # a metric this GPU lacks: drop it and try once more
            kept = [m for m in ncu_metric_list(self.settings)[0] if m not in bad]
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
        extracted = ncu_metrics.extract((d / "metrics.csv").read_text(errors="replace"))
        (d / "metrics.json").write_text(json.dumps(extracted, indent=1) + "\n")
        metrics = {k: v for k, v in extracted["summary"].items() if k != "top_kernels"}
        metrics["top_kernel"] = (extracted["summary"]["top_kernels"] or [{"name": None}])[0]["name"]
        # As many kernels as the cap: the range may hold more, which were not profiled.
        metrics["capped"] = metrics["kernels"] >= self.settings.launch_count
        return {"status": "ok", "reason": "", "metrics": metrics,
                "artifacts": ["report.ncu-rep", "metrics.csv", "metrics.json"]}

    def _run_nsys(self, job: Job, d: Path, cmds: list[list[str]], record: dict) -> dict:
        rc, text, child = self._run_child(cmds[0], d)
        report = d / "report.nsys-rep"
        if not report.exists():
            deleted = delete_files(qdstrm_files(d, text))  # raw streams nothing here can read: gigabytes for nothing
            if child["status"] == "failed" and (d / "child.json").exists():  # the example failed, not nsys
                return {"status": "failed", "reason": child["reason"], "metrics": {}, "deleted": deleted}
            if deleted or ".qdstrm" in text:
                why = _last_line(text, "Importer") or "no QdstrmImporter"
                self.gone["nsys"] = f"nsys wrote a .qdstrm but could not import it ({why})"
            else:
                self.gone["nsys"] = f"nsys produced no report (exit code {rc}): {_last_line(text)}"
            reason = self.gone["nsys"] + (f"; deleted {deleted}" if deleted else "")
            return {"status": "unavailable", "reason": reason, "metrics": {}, "deleted": deleted}
        if child["status"] != "ok":
            return {"status": child["status"], "reason": child["reason"], "metrics": {}}
        rc, text = run_logged(cmds[1], d, self.settings.timeout)
        extracted = nsys_summary.extract(d / "stats")
        deleted = delete_files([d / "report.sqlite"])  # nsys stats' export: `nsys export` makes it again
        if not extracted["reports"]:
            self.gone["nsys"] = f"nsys stats wrote no CSV (exit code {rc}): {_last_line(text)}"
            return {"status": "unavailable", "reason": self.gone["nsys"], "metrics": {}, "deleted": deleted}
        (d / "nsys_summary.json").write_text(json.dumps(extracted, indent=1) + "\n")
        summary = extracted["summary"]
        metrics = {k: v for k, v in summary.items() if not isinstance(v, list)}
        metrics["top_kernel"] = (summary["top_kernels"] or [{"name": None}])[0]["name"]
        return {"status": "ok", "reason": "", "metrics": metrics, "deleted": deleted,
                "artifacts": ["report.nsys-rep", "nsys_summary.json"]}
