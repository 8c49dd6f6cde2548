"""Write each chapter's measured table into its README from the recorded expectations.

    python tools/render_results.py ch1 [ch7 ...]   # rewrite the tables
    python tools/render_results.py --check         # exit 1 if any README is out of date

The table goes between `<!-- results:begin -->` and `<!-- results:end -->` in chN/README.md, and between
`<!-- results:chN:begin -->` and `<!-- results:chN:end -->` in the top-level README.md; the peak tables
from peaks/<gpu>.json (written by benchmark_peak.py) between `<!-- peaks:begin -->` and `<!-- peaks:end -->`;
Chapter 20's loop runs from ch20/runs/ between `<!-- runs:begin -->` and `<!-- runs:end -->`; the command-line
modules' recorded JSONs (chN/recorded/<run>/, see harness/recorded.py) between `<!-- recorded:begin -->` and
`<!-- recorded:end -->`. Nothing in those tables is typed by hand: they come from chN/expectations/<gpu>.json,
which `--record` writes, and from the recorded JSONs, each with its provenance.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

from harness import recorded, targets
from harness.device import REPO_ROOT, arch_key
from harness.example import load_example
from harness.peaks import PEAKS_DIR, load_peaks
from harness.peaks import markdown_table as peaks_markdown
from harness.report import expectations_markdown
from harness.sweep import chapter_dirs, examples_in


def chapter_block(chapter_dir) -> str:
    """Each GPU's recorded figures, judged against the chapter's targets as they are now."""
    files = sorted((chapter_dir / "expectations").glob("*.json"))
    if not files:
        return "Not yet measured: no recorded run on a GPU."
    claims = targets.load_targets(chapter_dir)
    blocks = []
    for f in files:
        recorded = json.loads(f.read_text())
        arch = arch_key(recorded["gpu"])
        blocks.append(expectations_markdown(
            recorded, judge=lambda res, arch=arch: targets.evaluate(claims.get(res.id.split("/")[1], {}), res, arch)))
    return "\n\n".join(blocks)


def cpu_block() -> str:
    """Which examples run on the CPU, and why the others do not: read from each example's requirements."""
    import torch

    cpu, lines = torch.device("cpu"), []
    for chapter_dir in chapter_dirs():
        runs, skipped = [], []
        for ref in examples_in(chapter_dir):
            try:
                ex = load_example(ref.path)
            except Exception as exc:  # reported as failed by the harness itself
                skipped.append(f"`{ref.path.stem}` (does not load: {type(exc).__name__})")
                continue
            why = ex.requires.unmet(cpu) or ex.baseline.requires.unmet(cpu)
            (skipped if why else runs).append(f"`{ref.path.stem}`" + (f" ({why})" if why else ""))
        if runs or skipped:
            lines.append(f"- {chapter_dir.name}: runs on the CPU: {', '.join(runs) or 'none'}"
                         + (f"; GPU only: {', '.join(skipped)}" if skipped else ""))
    return "\n".join(lines)


def peaks_block() -> str:
    files = sorted(PEAKS_DIR.glob("*.json"))
    if not files:
        return "Not yet measured: run `python benchmark_peak.py` on a GPU."
    return "\n".join(peaks_markdown(load_peaks(f)) for f in files).rstrip()


def replace_block(text: str, begin: str, end: str, block: str) -> str:
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    return pattern.sub(lambda _: f"{begin}\n{block}\n{end}", text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="default: every chapter")
    parser.add_argument("--check", action="store_true", help="report stale READMEs instead of writing")
    args = parser.parse_args(argv)
    known = {d.name: d for d in chapter_dirs()}
    unknown = [c for c in args.chapters if c not in known]
    if unknown:
        print(f"render_results: unknown chapter(s) {', '.join(unknown)}; chapters here: {', '.join(known)}", file=sys.stderr)
        return 2
    stale = []
    top = REPO_ROOT / "README.md"
    blocks = [(top, "<!-- peaks:begin -->", "<!-- peaks:end -->", peaks_block()),
              (top, "<!-- cpu:begin -->", "<!-- cpu:end -->", cpu_block())]
    for name in args.chapters or list(known):
        block = chapter_block(known[name])
        blocks += [(known[name] / "README.md", "<!-- results:begin -->", "<!-- results:end -->", block),
                   (top, f"<!-- results:{name}:begin -->", f"<!-- results:{name}:end -->", block),
                   (known[name] / "README.md", "<!-- recorded:begin -->", "<!-- recorded:end -->",
                    recorded.block(known[name]))]
    runs = sorted(p for p in (REPO_ROOT / "ch20" / "runs").glob("*") if (p / "summary.json").exists())
    if runs:
        from ch20.report import table
        blocks.append((REPO_ROOT / "ch20" / "README.md", "<!-- runs:begin -->", "<!-- runs:end -->", table(runs)))
    for readme, begin, end, block in blocks:
        if not readme.exists() or begin not in readme.read_text():
            continue
        old = readme.read_text()
        new = replace_block(old, begin, end, block)
        if new != old:
            stale.append(str(readme.relative_to(REPO_ROOT)))
            if not args.check:
                readme.write_text(new)
    verb = "out of date" if args.check else "updated"
    print(f"render_results: {verb}: {', '.join(dict.fromkeys(stale)) or 'none'}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
