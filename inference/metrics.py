"""Serving metrics from finished requests: per request TTFT (arrival to first token), TPOT (time per output token
after the first), end-to-end latency; their p50/p90/p99; throughput; goodput under an SLO.

Goodput counts only requests that met the SLO (TTFT <= slo_ttft and TPOT <= slo_tpot) per second of the run: a
server that pushes more tokens/s by letting latency blow past the SLO gains throughput and loses goodput.
"""
from __future__ import annotations

import numpy as np

from inference.scheduler import Request

PERCENTILES = (50, 90, 99)


def per_request(reqs: list[Request]) -> list[dict]:
    rows = []
    for r in reqs:
        row = {"rid": r.rid, "arrival": r.arrival, "prompt": len(r.prompt), "output": len(r.output),
               "prefix_hit": r.prefix_hit, "preemptions": r.preemptions, "ttft": None, "tpot": None, "e2e": None}
        if r.finish_time is not None:
            row["ttft"] = r.first_token_time - r.arrival
            row["e2e"] = r.finish_time - r.arrival
            row["tpot"] = (r.finish_time - r.first_token_time) / (len(r.output) - 1) if len(r.output) > 1 else 0.0
        rows.append(row)
    return rows


def _pcts(values: list[float]) -> dict:
    if not values:
        return {f"p{p}": None for p in PERCENTILES} | {"mean": None}
    a = np.asarray(values)
    return {f"p{p}": float(np.percentile(a, p)) for p in PERCENTILES} | {"mean": float(a.mean())}


def summarize(reqs: list[Request], makespan: float, slo_ttft: float, slo_tpot: float) -> dict:
    rows = per_request(reqs)
    done = [r for r in rows if r["e2e"] is not None]
    good = [r for r in done if r["ttft"] <= slo_ttft and r["tpot"] <= slo_tpot]
    out_tokens = sum(r["output"] for r in done)
    prompt_tokens = sum(r["prompt"] for r in done)
    return {
        "requests": len(rows), "finished": len(done), "makespan_s": makespan,
        "ttft_s": _pcts([r["ttft"] for r in done]), "tpot_s": _pcts([r["tpot"] for r in done]),
        "e2e_s": _pcts([r["e2e"] for r in done]),
        "output_tokens_per_s": out_tokens / makespan if makespan > 0 else None,
        "total_tokens_per_s": (out_tokens + prompt_tokens) / makespan if makespan > 0 else None,
        "requests_per_s": len(done) / makespan if makespan > 0 else None,
        "slo": {"ttft_s": slo_ttft, "tpot_s": slo_tpot},
        "goodput_requests_per_s": len(good) / makespan if makespan > 0 else None,
        "slo_attainment": len(good) / len(rows) if rows else None,
        "prefix_hit_tokens": sum(r["prefix_hit"] for r in done), "prompt_tokens": prompt_tokens,
        "preemptions": sum(r["preemptions"] for r in rows),
    }


def plot_latency_throughput(series: dict[str, list[dict]], path, title: str = "") -> None:
    """One line per label: x = output tokens/s, y = p50 and p99 end-to-end latency and TTFT (one point per rate)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, points in series.items():
        x = [p["output_tokens_per_s"] for p in points]
        for ax, key in zip(axes, ("e2e_s", "ttft_s"), strict=True):
            line, = ax.plot(x, [p[key]["p50"] for p in points], "o-", label=f"{label} p50")
            ax.plot(x, [p[key]["p99"] for p in points], "s--", color=line.get_color(), label=f"{label} p99")
    for ax, name in zip(axes, ("end-to-end latency (s)", "TTFT (s)"), strict=True):
        ax.set_xlabel("throughput (output tokens/s)")
        ax.set_ylabel(name)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
