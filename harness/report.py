"""Turning results into tables: the console, the Markdown summary and the chapter READMEs.

Everything here reads ExampleResult; figures print in engineering units with three significant digits.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.result import ExampleResult, TargetCheck, VariantResult


def _num(x, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


def _time_unit(ms: float) -> tuple[float, str]:
    return (1e-3, "s") if ms >= 1e3 else (1.0, "ms") if ms >= 1 else (1e3, "µs")


def fmt_time(ms: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """'1.23 ms', or with a range in the median's unit: '1.23 ms (1.21–1.26)'."""
    if ms is None:
        return "-"
    scale, unit = _time_unit(ms)
    text = f"{ms * scale:.3g} {unit}"
    if lo is not None and hi is not None:
        text += f" ({lo * scale:.3g}–{hi * scale:.3g})"
    return text


def fmt_rate(value: float | None, unit: str) -> str:
    """GB/s and TFLOP/s with a prefix that keeps three significant digits readable (1.21 TB/s, 328 GFLOP/s)."""
    if value is None:
        return "-"
    if unit == "GB/s":
        return f"{value / 1e3:.3g} TB/s" if value >= 1e3 else f"{value:.3g} GB/s" if value >= 1 else f"{value * 1e3:.3g} MB/s"
    if unit == "TFLOP/s":
        return f"{value:.3g} TFLOP/s" if value >= 1 else f"{value * 1e3:.3g} GFLOP/s"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _throughput(v: VariantResult, unit: str) -> str:
    parts = []
    if v.gbps is not None:
        parts.append(fmt_rate(v.gbps, "GB/s"))
    if v.tflops is not None:
        parts.append(fmt_rate(v.tflops, "TFLOP/s"))
    if v.items_per_s is not None:
        parts.append(fmt_rate(v.items_per_s, f"{unit}/s"))
    # The ceiling the variant is nearest to is the one that binds it (roofline): a GEMM's figure is its FLOP/s
    fracs = [(f, kind) for f, kind in ((v.fraction_of_peak_bandwidth, "bandwidth"), (v.fraction_of_peak_flops, "FLOP/s"))
             if f is not None]
    if fracs:
        frac, kind = max(fracs)
        parts.append(f"{frac:.0%} of peak {kind}")
    return ", ".join(parts) or "-"


def target_text(t: TargetCheck) -> str:
    status = {True: "met", False: "MISSED", None: "n/a"}[t.met]
    why = f" ({t.why})" if t.why and t.met is not True else ""
    return f"{t.metric} {t.op} {_num(t.value)}: {_num(t.measured)} {status}{why}"


def _ratio(x: float | None, lo: float | None = None, hi: float | None = None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}x" + (f" ({lo:.2f}–{hi:.2f})" if lo is not None and hi is not None else "")


def variant_rows(result: ExampleResult) -> list[list[str]]:
    """Example, variant, role, time, throughput, verified, speedup over the baseline and over the reference."""
    rows = []
    for v in result.variants:
        if v.status == "skipped":
            rows.append([result.id, v.name, v.role, "-", "-", f"skipped: {v.reason}", "-", "-"])
            continue
        over_base = result.speedup(v.name) if v.role != "baseline" else None
        shown = _ratio(over_base, v.paired_speedup_p25, v.paired_speedup_p75) if over_base is not None else "-"
        if over_base is not None and result.teaching_baseline:
            shown += " (over a teaching baseline)"   # kept out of headline figures
        over_ref = result.speedup(v.name, over="reference") if v.role == "optimized" else None
        verified = "baseline" if v.role == "baseline" else ("yes" if v.verified else "NO")
        time = fmt_time(v.median_ms, v.p25_ms, v.p75_ms)
        role = v.role + (" (teaching)" if v.teaching else "")
        rows.append([result.id, v.name, role, time, _throughput(v, result.items_unit), verified, shown, _ratio(over_ref)])
    return rows


HEADER = ["example", "variant", "role", "median (p25–p75)", "throughput", "verified", "vs baseline (p25–p75)",
          "vs reference"]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def emit(report: dict, render, dest: str | None) -> None:
    """A report module's output: JSON on stdout (dest "-"), else the text, and the JSON to the file named too.

    Raises OSError when that file cannot be written (the caller turns it into a usage error).
    """
    if dest == "-":
        print(json.dumps(report, indent=1, default=str))
        return
    print(render(report))
    if dest:
        Path(dest).write_text(json.dumps(report, indent=1, default=str))


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows])


def example_notes(result: ExampleResult, with_status: bool = True) -> list[str]:
    """Status, targets that apply, flags, regressions, and what the variants note about themselves."""
    who = result.id or result.title
    notes = [f"{who}: {result.status}" + (f" ({result.reason})" if result.reason else "")] \
        if result.status != "ok" and with_status else []
    notes += [f"{who}: target {target_text(t)}" for t in result.targets if t.value is not None]
    notes += [f"{who}: {v.name}: {v.note}" for v in result.variants if v.note]
    notes += [f"{who}: {flag}" for flag in result.flags]
    notes += [f"{who}: REGRESSION {r}" for r in result.regressions]
    return notes


def summary_markdown(results: dict) -> str:
    run = results["run"]
    dev = run["device"]
    examples = [ExampleResult.from_dict(e) for e in results["examples"]]
    where = dev["name"] if dev["name"] != "cpu" else f"CPU ({dev.get('cpu', '')})"
    head = [f"# Results: {where}" + (" (INTERRUPTED: the examples below finished)" if results.get("interrupted") else ""),
            "",
            f"- started {run['started_at']}, git {run.get('git_sha')}, size `{run.get('size')}`",
            f"- torch {run['versions']['torch']}, triton {run['versions']['triton']}, python {run['versions']['python']}"
            + (f", CUDA {dev['cuda']}, driver {dev['driver']}" if dev.get("cuda") else ""),
            f"- timing threads {run.get('cpu_threads')}, load average {_num(run.get('load_average'), '.2f')} at the start;"
            " times are medians with the 25th–75th percentiles; speedups over the baseline are the median of"
            " per-round ratios (variants timed in alternating rounds)", ""]
    rows = [r for res in examples for r in variant_rows(res)]
    statuses = [f"| {res.id} | {res.status} | {res.reason} |" for res in examples]
    notes = [n for res in examples for n in example_notes(res, with_status=False)]
    if dev["name"] == "cpu" and not any(t.value is not None for res in examples for t in res.targets):
        notes.append("no targets apply on the CPU for these examples (GPU claims are judged on GPUs only)")
    return "\n".join(head + [markdown_table(HEADER, rows), "", "| example | status | reason |", "|---|---|---|"]
                     + statuses + [""] + [f"- {n}" for n in notes]) + "\n"


def expectations_markdown(recorded: dict, judge=None) -> str:
    """The table for one GPU's expectations file, with where each row came from.

    judge(result) -> target checks: the chapter's targets as they are now (else those recorded with the run).
    """
    from harness.expectations import entry_result

    rows, sources = [], {}
    for ex_id, entry in recorded["examples"].items():
        prov = entry["provenance"]
        sources[(prov["git_sha"] or "unknown")[:12], prov["started_at"][:10]] = prov
        res = entry_result(entry)
        res.id = ex_id
        if judge is not None:
            res.targets = judge(res)
        # Each target sits on the row of the variant it judges: the one it names, else the fastest verified.
        fastest = res.fastest()
        judged: dict[str, list[str]] = {}
        for t in res.targets:
            if t.value is not None:
                judged.setdefault(t.variant or (fastest.name if fastest else ""), []).append(target_text(t))
        for row in variant_rows(res):
            rows.append(row + ["; ".join(judged.get(row[1], []))])
    first = next(iter(sources.values()), {})
    dev, versions = first.get("device", {}), first.get("versions", {})
    results = [entry_result(e) for e in recorded["examples"].values()]
    sizes = "/".join(sorted({r.size or "?" for r in results}))
    cold = " with a cold L2" if any(r.cold_l2_applied or r.cold_l2 for r in results) else ""
    head = (f"Measured on {recorded.get('gpu', '?')} (driver {dev.get('driver')}, CUDA {dev.get('cuda')}, "
            f"torch {versions.get('torch')}, triton {versions.get('triton')}), size `{sizes}`{cold}; "
            + ", ".join(f"git {sha} on {date}" for sha, date in sorted(sources)) + ".")
    return head + "\n\n" + markdown_table(HEADER + ["targets"], rows)
