"""Finding examples, running each in its own process, and writing results as they finish."""
from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from harness import environment, expectations, peaks, report, targets
from harness.device import REPO_ROOT, gpu_slug, provenance
from harness.example import docstring_title, is_example_file, load_example
from harness.process import run_isolated, write_atomic
from harness.result import SCHEMA_VERSION, ContractError, ExampleResult, RunOptions

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


def run_child(ref: ExampleRef, opts: RunOptions, *, timeout: float, log_path: Path) -> ExampleResult:
    """Run one example in a fresh process; a crash, hang or CUDA error becomes its status."""
    ids = {"id": ref.id, "chapter": ref.chapter, "title": ref.title, "size": opts.size, "seed": opts.seed}
    with tempfile.TemporaryDirectory() as tmp:
        out, options = Path(tmp) / "result.json", Path(tmp) / "options.json"
        options.write_text(opts.to_json())
        cmd = [sys.executable, "-m", "harness.runner", str(ref.path), "--options", str(options), "--json", str(out)]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            env = environment.child_thread_env(opts.cpu_threads)
            if opts.device == "cpu":
                env["TRITON_INTERPRET"] = "1"   # Triton kernels run in its interpreter where there is no GPU
            rc = run_isolated(cmd, timeout=timeout, stdout=log, env=env)
        if rc is None:
            return ExampleResult.failure("timeout", f"no result within {timeout:g} s", **ids)
        if out.exists():
            try:
                res = ExampleResult.from_dict(json.loads(out.read_text()))
            except (ValueError, ContractError) as exc:
                return ExampleResult.failure("failed", f"unreadable result: {exc}"[:300], **ids)
            res.id, res.chapter, res.title = ref.id, ref.chapter, ref.title
            return res
        tail = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()][-1:] or [""]
        how = f"killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
        reason = f"process {how}" + (f": {tail[0][:300]}" if tail[0] else "")
        return ExampleResult.failure("failed", reason, **ids)


def _judge(res: ExampleResult, ref: ExampleRef, inputs: Inputs, arch: str) -> None:
    """Peaks, targets and regressions; an error here fails the example rather than passing it unjudged."""
    try:
        peaks.annotate(res, inputs.device, ceil=inputs.ceil)
        res.settle()
        res.targets = targets.evaluate(inputs.claims[ref.path.parent].get(ref.path.stem, {}), res, arch)
        res.regressions = expectations.regressions(res, inputs.recorded[ref.path.parent]["examples"].get(ref.id))
    except Exception as exc:
        res.status = "failed"
        res.reason = f"the harness could not judge this result: {type(exc).__name__}: {exc}"[:500]


def run_sweep(refs: list[ExampleRef], *, opts: RunOptions, out_dir: Path, timeout: float = 600, record: bool = False,
              force: bool = False, progress: Callable[[str], None] = print) -> dict:
    """Run every example; results.json and summary.md are rewritten after each one finishes.

    The files the results are judged by (targets, expectations, peaks) are read first: a bad one is a
    UsageError before anything runs, not a crash halfway through. Ctrl-C ends the running example's process
    group, keeps what finished, and marks the run interrupted.
    """
    device = torch.device(opts.device)
    run = provenance(device, size=opts.size, cold_l2=opts.cold_l2, cpu_threads=opts.cpu_threads,
                     load_average=environment.load_average())
    arch, slug = run["device"]["arch"], gpu_slug(run["device"]["name"])
    inputs = check_inputs(refs, run["device"], slug)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"schema": SCHEMA_VERSION, "run": run, "interrupted": False, "examples": []}
    t0 = time.monotonic()

    def save() -> None:
        write_atomic(out_dir / "results.json", json.dumps(results, indent=1))
        write_atomic(out_dir / "summary.md", report.summary_markdown(results))

    try:
        for i, ref in enumerate(refs, 1):
            progress(f"[{i}/{len(refs)} {_clock(time.monotonic() - t0)}] {ref.id} ...")
            log = out_dir / "logs" / f"{ref.id.replace('/', '_')}.log"
            res = run_child(ref, opts, timeout=timeout, log_path=log)
            _judge(res, ref, inputs, arch)
            if res.regressions:  # a suspected regression is measured once more before it is reported
                again = run_child(ref, opts, timeout=timeout, log_path=log.with_suffix(".rerun.log"))
                _judge(again, ref, inputs, arch)
                if again.status == "ok" and not again.regressions:
                    again.flags.append(f"a suspected regression was not confirmed on re-run ({'; '.join(res.regressions)})")
                    res = again
                else:
                    res.flags.append("regression confirmed on re-run")
            if record and device.type == "cuda":
                why = expectations.record(expectations.expectations_path(ref.path.parent, slug), res, run, force=force)
                res.flags.append(f"not recorded: {why} (--force records it anyway)" if why else "recorded")
            results["examples"].append(res.to_dict())
            save()
            progress(f"    {_one_line(res)}")
    except KeyboardInterrupt:
        results["interrupted"] = True
        save()
        progress(f"interrupted: {len(results['examples'])} of {len(refs)} examples finished and kept")
        return results
    _draw_roofline(results, out_dir / "roofline.png", progress)
    return results


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def _draw_roofline(results: dict, png: Path, progress: Callable[[str], None]) -> None:
    try:
        from harness import roofline
        roofline.plot(results, png)
    except Exception as exc:  # matplotlib missing, or odd ceilings: the figures are all in results.json anyway
        progress(f"roofline not drawn: {exc}")


@dataclass
class Inputs:
    """What results are judged by, read once before anything runs."""
    device: dict
    claims: dict          # chapter dir -> targets
    recorded: dict        # chapter dir -> expectations
    ceil: peaks.Ceilings


def _variant_names(chapter_dir: Path) -> dict[str, set[str] | None]:
    """Each example of a chapter and its variant names (None where the file does not load)."""
    out: dict[str, set[str] | None] = {}
    for ref in examples_in(chapter_dir):
        try:
            out[ref.path.stem] = {v.name for v in load_example(ref.path).variants()}
        except Exception:  # it will fail as an example, with its own reason
            out[ref.path.stem] = None
    return out


def check_inputs(refs: list[ExampleRef], device_info: dict, slug: str) -> Inputs:
    """Each chapter's targets (every name in them real), this GPU's expectations and its ceilings."""
    claims, recorded = {}, {}
    try:
        for chapter_dir in dict.fromkeys(ref.path.parent for ref in refs):
            claims[chapter_dir] = targets.load_targets(chapter_dir)
            if claims[chapter_dir]:
                targets.check_names(claims[chapter_dir], chapter_dir / "targets.toml", _variant_names(chapter_dir))
            recorded[chapter_dir] = expectations.load(expectations.expectations_path(chapter_dir, slug))
        ceil = peaks.ceilings(device_info)
    except (ValueError, TypeError, AttributeError) as exc:  # TargetsError is a ValueError
        raise UsageError(str(exc).splitlines()[0]) from exc
    return Inputs(device_info, claims, recorded, ceil)


def _one_line(res: ExampleResult) -> str:
    parts = [res.status]
    if res.speedup():
        parts.append(f"speedup {res.speedup():.2f}x")
    if res.reason:
        parts.append(res.reason)
    if res.missed:
        parts.append("missed target: " + ", ".join(t.metric for t in res.missed))
    parts += [f"REGRESSION {r}" for r in res.regressions]
    return " | ".join(parts)
