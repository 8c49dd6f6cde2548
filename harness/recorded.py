"""Tables from recorded CLI runs: the JSON that a chapter's command-line module writes (`--json`), with
`provenance` (GPU, driver, CUDA, torch, git SHA, date) and its figures as rows: a list of dicts, or a dict of
dicts keyed by name (`rows`, `variants`, `timing`, ... : every such top-level field becomes a table), copied
into `chN/recorded/<run>/`.

The harness's own examples are rendered from `chN/expectations/`; the modules that are not baseline/optimized
pairs (a profiled training step, a compile sweep, FP8 training) keep their figures here instead. Every scalar
field of a row becomes a column, lists (per-step times, loss curves) are left to the JSON and its pictures;
`python tools/render_results.py` writes the tables between `<!-- recorded:begin -->` and `<!-- recorded:end -->`.
"""
from __future__ import annotations

import json
from pathlib import Path

MAX_COLUMNS = 12


def _cell(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v).replace("|", "/").replace("\n", " ")


def _scalar(v) -> bool:
    """A value for a table cell: scalars only; a path (a trace on the machine that ran it) means nothing here."""
    return v is None or isinstance(v, (int, float, bool)) or (isinstance(v, str) and not v.startswith("/"))


def rows_of(value) -> list[dict]:
    """A field's rows as a list of dicts ([] when it holds none); a dict of dicts keyed by name gets that name
    as its first column."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return [{"name": k, **v} for k, v in value.items()]
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        # a row holding its own rows (a kernel's timings per size): one row each, under the parent's scalars
        out = []
        for r in value:
            inner = r.get("rows")
            if isinstance(inner, list) and inner and all(isinstance(x, dict) for x in inner):
                parent = {k: v for k, v in r.items() if not isinstance(v, (list, dict))}
                out += [{**parent, **x} for x in inner]
            else:
                out.append(r)
        return out
    return []


def provenance_line(p: dict) -> str:
    dev, ver = p.get("device") or {}, p.get("versions") or {}
    return (f"{dev.get('name', '?')} (driver {dev.get('driver', '?')}, CUDA {dev.get('cuda', '?')}, "
            f"torch {ver.get('torch', '?')}), git {p.get('git_sha', '?')}, {str(p.get('started_at', '?'))[:10]}")


def tables(doc: dict, title: str) -> list[str]:
    """One table per field of `doc` that holds rows; the first one carries the command and provenance."""
    out = []
    for key, value in doc.items():
        rows = rows_of(value) if key != "provenance" else []
        if any(k != "name" and _scalar(v) for r in rows for k, v in r.items()):   # not names alone
            head = title if key == "rows" else f"{title}: {key}"
            out.append(table(rows, head, doc if not out else None))
    return out


def table(rows: list[dict], title: str, doc: dict | None) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [k for k, v in r.items() if k not in cols and _scalar(v)]
    cols = cols[:MAX_COLUMNS]
    head = f"**{title}**"
    if doc is not None:
        argv = (doc.get("provenance") or {}).get("argv")
        cmd = f" (`{' '.join(str(a) for a in argv)}`)" if isinstance(argv, list) and argv else ""
        head += f"{cmd}: {provenance_line(doc.get('provenance') or {})}"
    lines = [head, "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def block(chapter_dir: Path) -> str:
    """Every recorded run of the chapter: one table per JSON, then its pictures."""
    runs = sorted(p for p in (Path(chapter_dir) / "recorded").glob("*") if p.is_dir())
    parts = []
    for run in runs:
        for f in sorted(run.glob("*.json")):
            doc = json.loads(f.read_text())
            found = tables(doc, f.stem) if isinstance(doc, dict) and "provenance" in doc else []
            if found:
                parts.append("\n\n".join(found) + f"\n\n(`recorded/{run.name}/{f.name}`)")
        for png in sorted(run.glob("*.png")):
            parts.append(f"![{png.stem.replace('_', ' ')}](recorded/{run.name}/{png.name})")
    return "\n\n".join(parts) if parts else "Not yet measured: no recorded run on a GPU."
