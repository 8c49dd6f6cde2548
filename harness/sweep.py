"""Finding examples, running each in its own process, and writing results as they finish."""
from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from harness import expectations, peaks, report, targets
from harness.device import REPO_ROOT, gpu_slug, provenance
from harness.example import docstring_title, is_example_file
from harness.process import run_isolated, write_atomic

CHAPTER_RE = re.compile(r"^ch(\d+)$")


class UsageError(Exception):
    """Bad targets or options: exit code 2 with a one-line message."""


@dataclass(frozen=True)
class ExampleRef:
    id: str          # "ch1/pinned_memory"
    chapter: str     # "ch1"
    path: Path

    @property
    def title(self) -> str:
        return docstring_title(self.path)


def chapter_dirs(root: Path = REPO_ROOT) -> list[Path]:
    dirs = [p for p in root.iterdir() if p.is_dir() and CHAPTER_RE.match(p.name)]
    return sorted(dirs, key=lambda p: int(CHAPTER_RE.match(p.name).group(1)))


def examples_in(chapter_dir: Path) -> list[ExampleRef]:
    return [ExampleRef(f"{chapter_dir.name}/{p.stem}", chapter_dir.name, p)
            for p in sorted(chapter_dir.glob("*.py")) if not p.name.startswith("_") and is_example_file(p)]


def resolve(names: list[str], root: Path = REPO_ROOT) -> list[ExampleRef]:
    """Targets `chN`, `chN/example` or a path to an example file; nothing means every chapter."""
    chapters = {p.name: p for p in chapter_dirs(root)}
    if not names:
        return [ref for d in chapters.values() for ref in examples_in(d)]
    refs: list[ExampleRef] = []
    for name in names:
        path = Path(name)
        if name.endswith(".py") and not path.is_file() and not CHAPTER_RE.match(path.parts[0]):
            raise UsageError(f"no such file: {name}")
        if name.endswith(".py") and path.is_file():
            path = path.resolve()
            if not is_example_file(path):
                raise UsageError(f"{name} defines no EXAMPLE = Example(...)")
            refs.append(ExampleRef(f"{path.parent.name}/{path.stem}", path.parent.name, path))
            continue
        chapter, _, example = name.strip("/").removesuffix(".py").partition("/")
        if chapter not in chapters:
            raise UsageError(f"unknown chapter {chapter!r}; chapters here: {', '.join(chapters) or 'none'}")
        found = examples_in(chapters[chapter])
        if example:
            found = [r for r in found if r.path.stem == example]
            if not found:
                names_here = ", ".join(r.path.stem for r in examples_in(chapters[chapter]))
                raise UsageError(f"no example {example!r} in {chapter}; it has: {names_here}")
        refs.extend(found)
    return list(dict.fromkeys(refs))


def run_child(ref: ExampleRef, *, device: str, size: str, timeout: float, seed: int | None,
              cold_l2: bool, log_path: Path) -> dict:
    """Run one example in a fresh process; a crash, hang or CUDA error becomes its status."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "harness.runner", str(ref.path), "--json", str(out), "--size", size, "--device", device]
        cmd += ["--seed", str(seed)] if seed is not None else []
        cmd += ["--cold-l2"] if cold_l2 else []
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            rc = run_isolated(cmd, timeout=timeout, stdout=log)
        if rc is None:
            return {"status": "timeout", "reason": f"no result within {timeout:g} s", "variants": [], "speedup": None}
        if out.exists():
            return json.loads(out.read_text())
        tail = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()][-1:] or [""]
        how = f"killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
        reason = f"process {how}" + (f": {tail[0][:300]}" if tail[0] else "")
        return {"status": "failed", "reason": reason, "variants": [], "speedup": None}


def run_sweep(refs: list[ExampleRef], *, device: torch.device, size: str, out_dir: Path, timeout: float = 600,
              seed: int | None = None, cold_l2: bool = False, record: bool = False,
              progress: Callable[[str], None] = print) -> dict:
    """Run every example; results.json and summary.md are rewritten after each one finishes.

    The files the results are judged by (targets, expectations, peaks) are read first: a bad one is a
    UsageError before anything runs, not a crash halfway through.
    """
    run = provenance(device, size=size, cold_l2=cold_l2)
    arch, slug = run["device"]["arch"], gpu_slug(run["device"]["name"])
    claims, recorded, ceil = check_inputs(refs, run["device"], slug)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"run": run, "examples": []}
    for i, ref in enumerate(refs, 1):
        progress(f"[{i}/{len(refs)}] {ref.id} ...")
        res = run_child(ref, device=device.type, size=size, timeout=timeout, seed=seed, cold_l2=cold_l2,
                        log_path=out_dir / "logs" / f"{ref.id.replace('/', '_')}.log")
        res = {"id": ref.id, "chapter": ref.chapter, "title": ref.title, "flags": [], "cold_l2": cold_l2,
               "targets": [], "regressions": [], **res}
        chapter_dir = ref.path.parent
        try:
            peaks.annotate(res, run["device"], ceil=ceil)
            res["targets"] = targets.evaluate(claims[chapter_dir].get(ref.path.stem, {}), res, arch)
            res["regressions"] = expectations.regressions(res, recorded[chapter_dir]["examples"].get(ref.id))
            if record and res["status"] == "ok" and device.type == "cuda":
                expectations.record(expectations.expectations_path(chapter_dir, slug), ref.id, res, run)
        except Exception as exc:  # never lose the example's own result to the bookkeeping around it
            res["flags"].append(f"harness could not finish judging this result: {type(exc).__name__}: {exc}")
        results["examples"].append(res)
        write_atomic(out_dir / "results.json", json.dumps(results, indent=1))
        write_atomic(out_dir / "summary.md", report.summary_markdown(results))
        progress(f"    {_one_line(res)}")
    _draw_roofline(results, out_dir / "roofline.png", progress)
    return results


def _draw_roofline(results: dict, png: Path, progress: Callable[[str], None]) -> None:
    try:
        from harness import roofline
        roofline.plot(results, png)
    except Exception as exc:  # matplotlib missing, or odd ceilings: the figures are all in results.json anyway
        progress(f"roofline not drawn: {exc}")


def check_inputs(refs: list[ExampleRef], device_info: dict, slug: str) -> tuple[dict, dict, peaks.Ceilings]:
    """Each chapter's targets, this GPU's expectations and its ceilings, read once; UsageError names a bad file."""
    claims, recorded = {}, {}
    try:
        for chapter_dir in dict.fromkeys(ref.path.parent for ref in refs):
            claims[chapter_dir] = targets.load_targets(chapter_dir)
            recorded[chapter_dir] = expectations.load(expectations.expectations_path(chapter_dir, slug))
        ceil = peaks.ceilings(device_info)
    except (ValueError, TypeError, AttributeError) as exc:  # TargetsError is a ValueError
        raise UsageError(str(exc).splitlines()[0]) from exc
    return claims, recorded, ceil


def _one_line(res: dict) -> str:
    parts = [res["status"]]
    if res.get("speedup"):
        parts.append(f"speedup {res['speedup']:.2f}x")
    if res.get("reason"):
        parts.append(res["reason"])
    missed = [t["metric"] for t in res.get("targets", []) if t["met"] is False]
    if missed:
        parts.append("missed target: " + ", ".join(missed))
    parts += [f"REGRESSION {r}" for r in res.get("regressions", [])]
    return " | ".join(parts)
