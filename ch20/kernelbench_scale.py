"""KernelBench problems at their own sizes, the reference given as the candidate: time and memory of a verification.

    python -m ch20.kernelbench_scale --dir .kernelbench --out OUT [--device auto|cpu|cuda] [--scale-down]
                                     [--per-problem-s 45] [PROBLEM ...]

Each problem file (KernelBench format; not committed, see ch20/runs/kernelbench_scale.sh) is verified in
a worker process of its own, against a candidate that is the problem's Model under the name ModelNew.
Per problem: wall seconds of the whole verification (starting both children included), peak host RSS of
the verifier process and of its largest child (getrusage), peak device memory (nvidia-smi, sampled every
0.1 s, above what was in use before), the verdict. A problem that fails or runs past --per-problem-s is
recorded as such; the others still run. Writes OUT/kernelbench_scale.json and OUT/kernelbench_scale.md.
--scale-down first rewrites every module-level integer above 16 to 16 (a CPU run of the same path).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROBLEMS = ("1_Square_matrix_multiplication_", "40_LayerNorm", "23_Softmax", "97_ScaledDotProductAttention",
            "95_CrossEntropyLoss")
GOAL_S = 20.0


def scale_down(source: str, cap: int = 16) -> str:
    """Module-level `name = <integer expression>` above cap becomes cap (KernelBench's sizes live there)."""
    out = []
    for line in source.splitlines():
        m = re.match(r"^([A-Za-z_]\w*)\s*=\s*([0-9 *+\-/()]+)\s*(#.*)?$", line)
        if m:
            value = eval(m.group(2), {"__builtins__": {}})   # noqa: S307 - digits and arithmetic only (the regex)
            if isinstance(value, int) and value > cap:
                line = f"{m.group(1)} = {cap}"
        out.append(line)
    return "\n".join(out) + "\n"


class DevicePeak:
    """Peak GPU memory in use (MiB, all processes) sampled with nvidia-smi; None without one."""

    def __init__(self):
        self.base = self._used()
        self.peak = self.base
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True) if self.base is not None else None

    @staticmethod
    def _used() -> int | None:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10)
            return sum(int(x) for x in out.stdout.split()) if out.returncode == 0 else None
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None

    def _run(self):
        while not self.stop.wait(0.1):
            used = self._used()
            if used is not None:
                self.peak = max(self.peak, used)

    def __enter__(self):
        if self.thread:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread:
            self.thread.join(5)

    def above_base_gib(self) -> float | None:
        return None if self.base is None else round((self.peak - self.base) / 1024, 2)


def worker(problem_file: Path, device: str, timeout: float) -> dict:
    """One verification in this process; the figures as a dict (printed as the last line of stdout)."""
    from ch20.problem import load_problem
    from ch20.verify import verify

    started = time.monotonic()
    problem = load_problem(problem_file)
    with tempfile.TemporaryDirectory(prefix="ch20-kb-") as tmp:
        cand = Path(tmp) / f"{problem_file.stem}_reference_as_candidate.py"
        cand.write_text(problem_file.read_text() + "\n\nModelNew = Model   # the reference given as the candidate\n")
        with DevicePeak() as peak:
            v = verify(problem, cand, device=device, trials=1, rounds=4, timeout=timeout, min_speedup=0.0)
    return {"problem": problem_file.stem, "wall_s": round(time.monotonic() - started, 2),
            "verifier_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "largest_child_rss_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 3),
            "device_peak_gib": peak.above_base_gib(), "accepted": v["accepted"], "correct": v["correct"],
            "reason": v["reason"], "speedup": v["speedup"], "speedup_ci": v["speedup_ci"],
            "calls_per_batch": v["provenance"].get("calls_per_batch"), "checked_calls": len(v["trials"]),
            "whole_checks": sum(bool(t.get("whole")) for t in v["trials"]), "device": v["device"],
            "hardware": v["hardware"].get("name"), "sandbox": v["sandbox"], "digest": v["provenance"].get("digest"),
            "verdict_elapsed_s": v["elapsed_s"], "phases": v.get("phases", {})}


def run_one(problem_file: Path, device: str, per_problem_s: float) -> dict:
    """The worker in a subprocess: a crash, a hang or an exception there is one problem's failure."""
    started = time.monotonic()
    cmd = [sys.executable, "-m", "ch20.kernelbench_scale", "--worker", str(problem_file), "--device", device,
           "--per-problem-s", str(per_problem_s)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=per_problem_s + 8,
                              cwd=Path(__file__).resolve().parent.parent)
        lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
        if done.returncode == 0 and lines:
            return json.loads(lines[-1])
        why = f"worker exited with {done.returncode}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
    except subprocess.TimeoutExpired:
        why = f"worker ran past {per_problem_s + 8:.0f} s and was killed"
    return {"problem": problem_file.stem, "wall_s": round(time.monotonic() - started, 2), "accepted": False,
            "correct": False, "reason": why, "error": True}


def markdown(rows: list[dict]) -> str:
    head = ("| problem | wall s | verifier RSS GiB | largest child RSS GiB | device peak GiB | calls/batch | "
            "checked (whole) | verdict | speedup (95%) | where the time went (s) |")
    out = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        sp = f"{r['speedup']:.3g}x ({r['speedup_ci'][0]:.3g}-{r['speedup_ci'][1]:.3g})" if r.get("speedup") else "-"
        verdict = "accepted" if r["accepted"] else f"REJECTED: {r['reason'][:80]}"
        phases = ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in (r.get("phases") or {}).items()) or "-"
        out.append(f"| {r['problem']} | {r['wall_s']} | {r.get('verifier_rss_gib', '-')} | "
                   f"{r.get('largest_child_rss_gib', '-')} | {r.get('device_peak_gib', '-')} | "
                   f"{r.get('calls_per_batch', '-')} | {r.get('checked_calls', '-')} ({r.get('whole_checks', '-')}) | "
                   f"{verdict} | {sp} | {phases} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"ch20.kernelbench_scale: {message}", file=sys.stderr)
            sys.exit(2)

    p = Parser(prog="python -m ch20.kernelbench_scale", description=__doc__.splitlines()[0])
    p.add_argument("problems", nargs="*", help=f"file stems (default: {', '.join(PROBLEMS)})")
    p.add_argument("--dir", type=Path, default=Path(".kernelbench"))
    p.add_argument("--out", type=Path)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--scale-down", action="store_true", help="every module-level integer above 16 becomes 16")
    p.add_argument("--per-problem-s", type=float, default=45.0, help="verification timeout (the worker gets 8 s more)")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.device, args.per_problem_s), default=str))
        return 0
    if args.out is None:
        p.error("--out is required")
    names = args.problems or list(PROBLEMS)
    files = [args.dir / f"{n}.py" for n in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        p.error(f"missing problem files: {', '.join(missing)} (see ch20/runs/kernelbench_scale.sh)")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ch20-kb-src-"))
    if args.scale_down:
        scaled = []
        for f in files:
            (work / f.name).write_text(scale_down(f.read_text()))
            scaled.append(work / f.name)
        files = scaled
    rows = []
    for f in files:
        row = run_one(f, args.device, args.per_problem_s)
        row["meets_20s_goal"] = row["wall_s"] <= GOAL_S
        rows.append(row)
        print(f"{row['problem']}: {row['wall_s']} s, {'accepted' if row['accepted'] else 'REJECTED: ' + row['reason'][:120]}",
              flush=True)
    from harness.device import git_sha  # honours AISP_GIT_SHA (a copied tree's .git is stale)
    meta = {"scaled_down": args.scale_down, "device": args.device, "python": sys.version.split()[0],
            "loadavg": os.getloadavg(), "git": git_sha(), "goal": f"each problem <= {GOAL_S:g} s wall, host memory "
            "<= 2x one input set", "rows": rows}
    (args.out / "kernelbench_scale.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    (args.out / "kernelbench_scale.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0 if all(r["accepted"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
