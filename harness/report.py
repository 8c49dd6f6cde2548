"""Turning results into tables: the console, the Markdown summary and the chapter READMEs."""
from __future__ import annotations


def _num(x, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


def _throughput(v: dict, unit: str) -> str:
    parts = []
    if v.get("gbps") is not None:
        parts.append(f"{v['gbps']:.3g} GB/s")
    if v.get("tflops") is not None:
        parts.append(f"{v['tflops']:.3g} TFLOP/s")
    if v.get("items_per_s") is not None:
        parts.append(f"{v['items_per_s']:.3g} {unit}/s")
    frac = v.get("fraction_of_peak_bandwidth") or v.get("fraction_of_peak_flops")
    if frac is not None:
        parts.append(f"{frac:.0%} of peak")
    return ", ".join(parts) or "-"


def _target_text(t: dict) -> str:
    status = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
    return f"{t['metric']} {t['op']} {_num(t['value'])}: {_num(t['measured'])} {status}"


def variant_rows(result: dict) -> list[list[str]]:
    """Example, variant, time, throughput, verified, speedup: one row a variant."""
    rows = []
    base = result["variants"][0]["median_ms"] if result.get("variants") else None
    for v in result.get("variants", []):
        speedup = base / v["median_ms"] if base and v.get("median_ms") and v["role"] == "optimized" else None
        verified = "baseline" if v["role"] == "baseline" else ("yes" if v["verified"] else "NO")
        time = "-" if v.get("median_ms") is None else f"{v['median_ms']:.4g} ± {v['iqr_ms']:.2g}"
        shown = "-" if speedup is None else f"{speedup:.2f}x"
        if speedup is not None and result.get("teaching_baseline"):
            shown += " (over a teaching baseline)"  # kept out of headline figures
        rows.append([result.get("id", ""), v["name"], time, _throughput(v, result.get("items_unit", "items")),
                     verified, shown])
    return rows


HEADER = ["example", "variant", "median ms ± IQR", "throughput", "verified", "speedup"]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows])


def example_notes(result: dict, with_status: bool = True) -> list[str]:
    notes = [f"{result.get('id', '')}: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else "")] \
        if result["status"] != "ok" and with_status else []
    notes += [f"{result.get('id', '')}: target {_target_text(t)}" for t in result.get("targets", [])]
    notes += [f"{result.get('id', '')}: {flag}" for flag in result.get("flags", [])]
    notes += [f"{result.get('id', '')}: REGRESSION {r}" for r in result.get("regressions", [])]
    return notes


def summary_markdown(results: dict) -> str:
    run = results["run"]
    dev = run["device"]
    where = dev["name"] if dev["name"] != "cpu" else f"CPU ({dev.get('cpu', '')})"
    head = [f"# Results: {where}", "",
            f"- started {run['started_at']}, git {run.get('git_sha')}, size `{run.get('size')}`",
            f"- torch {run['versions']['torch']}, triton {run['versions']['triton']}, python {run['versions']['python']}"
            + (f", CUDA {dev['cuda']}, driver {dev['driver']}" if dev.get("cuda") else ""), ""]
    rows = [r for res in results["examples"] for r in variant_rows(res)]
    statuses = [f"| {res['id']} | {res['status']} | {res.get('reason', '')} |" for res in results["examples"]]
    notes = [n for res in results["examples"] for n in example_notes(res, with_status=False)]
    return "\n".join(head + [markdown_table(HEADER, rows), "", "| example | status | reason |", "|---|---|---|"]
                     + statuses + [""] + [f"- {n}" for n in notes]) + "\n"


def expectations_markdown(recorded: dict) -> str:
    """The table for one GPU's expectations file, with where each row came from."""
    rows, sources = [], {}
    for ex_id, entry in recorded["examples"].items():
        prov = entry["provenance"]
        sources[(prov["git_sha"] or "unknown")[:12], prov["started_at"][:10]] = prov
        # Each target sits on the row of the variant it judges: the one it names, else the fastest verified.
        timed = [v for v in entry["variants"][1:] if v.get("verified") and v.get("median_ms")]
        fastest = min(timed, key=lambda v: v["median_ms"])["name"] if timed else None
        judged: dict[str, list[str]] = {}
        for t in entry.get("targets", []):
            if t["value"] is not None:
                judged.setdefault(t.get("variant") or fastest, []).append(_target_text(t))
        for row in variant_rows({**entry, "id": ex_id}):
            rows.append(row + ["; ".join(judged.get(row[1], []))])
    dev = next(iter(sources.values()))["device"] if sources else {}
    versions = next(iter(sources.values()))["versions"] if sources else {}
    sizes = "/".join(sorted({e.get("size", "?") for e in recorded["examples"].values()}))
    cold = " with a cold L2" if any(e.get("cold_l2") for e in recorded["examples"].values()) else ""
    head = (f"Measured on {recorded.get('gpu', '?')} (driver {dev.get('driver')}, CUDA {dev.get('cuda')}, "
            f"torch {versions.get('torch')}, triton {versions.get('triton')}), size `{sizes}`{cold}; "
            + ", ".join(f"git {sha} on {date}" for sha, date in sorted(sources)) + ".")
    return head + "\n\n" + markdown_table(HEADER + ["targets"], rows)
