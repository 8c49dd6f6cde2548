"""summary.json and summary.md: every job's status and extracted figures, baseline beside optimized.

summary.json is rewritten after every job (atomically), so a run that is stopped keeps what it had.
summary.md adds what the run cost: wall time and disk per profiler, which traces were trimmed and by
how much, and which files were deleted.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.process import write_atomic
from profiling.torch_trace import describe_trim


def _example(summary: dict, example_id: str, title: str) -> dict:
    ex = next((e for e in summary["examples"] if e["id"] == example_id), None)
    if ex is None:
        ex = {"id": example_id, "title": title, "status": "ok", "reason": "", "variants": []}
        summary["examples"].append(ex)
    return ex


def _variant(ex: dict, name: str, role: str) -> dict:
    var = next((v for v in ex["variants"] if v["name"] == name), None)
    if var is None:
        var = {"name": name, "role": role, "profilers": {}}
        ex["variants"].append(var)
    return var


def add_to_summary(summary: dict, job, result: dict) -> None:
    var = _variant(_example(summary, job.example_id, job.title), job.variant, job.role)
    var["profilers"][job.profiler] = {**result, "dir": str(Path(job.example_id) / job.variant / job.profiler)}


def add_skipped_variant(summary: dict, example_id: str, title: str, name: str, role: str, reason: str) -> None:
    """A variant whose own requirements this machine does not meet: listed, with why, and not run."""
    _variant(_example(summary, example_id, title), name, role)["skipped"] = reason


def _fmt(x, fmt: str = ".3g") -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    return "-" if x is None else (format(x, fmt) if isinstance(x, (int, float)) else str(x))


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows])


COLUMNS = {
    "torch": [("kernel ms/step", "kernel_ms_per_step"), ("kernels/step", "kernels_per_step"),
              ("copy ms/step", "copy_ms_per_step"), ("copy GB/s", "copy_gbps"), ("CPU ms/step", "cpu_ms_per_step"),
              ("GPU idle % (HTA)", "hta_idle_pct"), ("HTA", "hta")],
    "ncu": [("kernels", "kernels"), ("capped", "capped"), ("GPU time ms", "gpu_time_ms"), ("DRAM %", "dram_pct"),
            ("SM %", "sm_pct"), ("occupancy %", "occupancy_pct"), ("L2 hit %", "l2_hit_pct"), ("tensor %", "tensor_pct")],
    "nsys": [("kernel ms", "kernel_time_ms"), ("kernels", "kernel_instances"), ("copy ms", "memcpy_time_ms"),
             ("CUDA API ms", "cuda_api_time_ms"), ("top kernel", "top_kernel")],
}
TITLES = {"torch": "PyTorch profiler (per profiled step)",
          "ncu": "Nsight Compute (kernels in the variant's NVTX range; %: duration-weighted over those kernels)",
          "nsys": "Nsight Systems (the cudaProfilerStart/Stop range)"}


def _results(summary: dict, profiler: str):
    for ex in summary["examples"]:
        for v in ex["variants"]:
            if profiler in v["profilers"]:
                yield ex, v, v["profilers"][profiler]


def profiler_section(summary: dict, profiler: str) -> list[str]:
    rows, reasons, notes = [], set(), set()
    for ex, v, res in _results(summary, profiler):
        reasons.add(res.get("reason", "") if res["status"] == "unavailable" else None)
        status = res["status"] + (f": {res['reason'][:90]}" if res.get("reason") else "")
        cells = [_fmt(res["metrics"].get(key))[:60] for _, key in COLUMNS[profiler]]
        if profiler == "torch" and res["metrics"].get("hta"):  # the word in the table, the reason below it
            cells[-1], _, why = res["metrics"]["hta"].partition(": ")
            if why:
                notes.add(f"HTA {cells[-1]}: {why}")
        rows.append([ex["id"], v["name"], v["role"], status] + cells + [_fmt(res.get("wall_s"))])
    lines = [f"## {TITLES[profiler]}", ""]
    if len(reasons) == 1 and None not in reasons:  # one reason for every row: say it once
        return lines + [f"Unavailable: {reasons.pop()}", ""]
    header = ["example", "variant", "role", "status"] + [c for c, _ in COLUMNS[profiler]] + ["wall s"]
    lines += [markdown_table(header, rows), ""]
    if profiler == "ncu" and any(res["metrics"].get("capped") for *_, res in _results(summary, profiler)):
        notes.add("capped: the range may hold more kernels than were profiled (--launch-count); raise it to see them")
    return lines + [f"- {n}" for n in sorted(notes)] + ([""] if notes else [])


def costs_section(summary: dict) -> list[str]:
    """Wall time and disk per profiler; trimmed traces and deleted files, each said."""
    rows, notes = [], []
    for profiler in summary["run"]["profilers"]:
        results = [(ex, v, res) for ex, v, res in _results(summary, profiler)]
        wall = sum(res.get("wall_s") or 0 for *_, res in results)
        disk = sum(res.get("disk_bytes") or 0 for *_, res in results)
        rows.append([profiler, str(len(results)), f"{wall:.0f}", f"{disk / 1e6:.3g}"])
        for ex, v, res in results:
            trim = res.get("trim") or {}
            if trim.get("trimmed"):
                notes.append(f"{ex['id']} {v['name']} torch trace: {describe_trim(trim)}")
            if res.get("deleted"):
                notes.append(f"{ex['id']} {v['name']} {profiler}: deleted {res['deleted']}")
    run = summary["run"]
    lines = ["## Time and disk", ""]
    if "elapsed_s" in run:
        lines += [f"- {run['elapsed_s']:.0f} s in all, {run.get('disk_bytes', 0) / 1e6:.3g} MB written", ""]
    lines += [markdown_table(["profiler", "jobs", "wall s", "disk MB"], rows), ""]
    return lines + [f"- {n}" for n in notes] + ([""] if notes else [])


def summary_markdown(summary: dict) -> str:
    run = summary["run"]
    skip = f"after skipping {run['launch_skip']}, " if run.get("launch_skip") else ""
    lines = [f"# Profiling: {run['device'].get('name')}", "",
             f"- started {run['started_at']}, git {run.get('git_sha')}, size `{run['size']}`, seed {run['seed']}, "
             f"torch {run['versions']['torch']}",
             f"- {run.get('warmup')} warm-up call(s), then {run.get('iters')} profiled call(s), fewer where they would "
             f"take over {run.get('iter_budget')} s; torch traces trimmed past {run.get('trace_max_events')} events, "
             f"the profiled range kept first",
             f"- ncu clock control `{run['clock_control']}`, {skip}at most {run['launch_count']} kernels per variant"]
    if run.get("interrupted"):
        lines.append("- **interrupted**: the jobs after the last one listed did not run")
    if run.get("budget_skipped"):
        lines.append(f"- **incomplete**: {run['budget_skipped']} job(s) not run, the budget of {run['budget_s']:g} s was spent")
    lines += [f"- {name}: {desc}" for name, desc in run["tools"].items()] + [""]
    for profiler in run["profilers"]:
        lines += profiler_section(summary, profiler)
    lines += costs_section(summary)
    skipped = [f"- {ex['id']} {v['name']} ({v['role']}): skipped: {v['skipped']}"
               for ex in summary["examples"] for v in ex["variants"] if v.get("skipped")]
    other = [f"- {ex['id']}: {ex['status']}: {ex['reason']}" for ex in summary["examples"] if ex["status"] != "ok"]
    return "\n".join(lines + skipped + other) + "\n"


def write_summary(out_root: Path, summary: dict) -> None:
    for name, text in (("summary.json", json.dumps(summary, indent=1)), ("summary.md", summary_markdown(summary))):
        write_atomic(out_root / name, text + ("\n" if not text.endswith("\n") else ""))
