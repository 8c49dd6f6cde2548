"""Routing across N decode workers: round-robin vs least-outstanding-tokens vs prefix-affinity, at rising load.

    python -m ch17.routing --size full --json routing.json --plot routing.png
    python -m ch17.routing --size tiny --device cpu --modes sim --sim-workers 8,64

Requests share system prompts (prefixes_per_worker x N of them, each prefix_len tokens: more than one worker's KV
pool holds), so where a request lands decides whether its prefix is a cache hit (pages reused, only the unique
part prefilled) or a miss (the whole prefix prefilled again, and cached pages of other prefixes evicted).
Round-robin spreads every prefix over every worker: each worker's cache holds all prefixes' working set and
thrashes. Least-outstanding-tokens balances the work but is as blind to caches. Prefix-affinity (consistent
hashing of the prefix, with bounded loads) gives each prefix a home worker, so each cache holds ~1/N of them.

Two modes: `real` (N engines in this process, each on its own clock of measured step times: `ch17.cluster`) and
`sim` (N simulated workers whose steps last what the fitted step model says: N up to 64). Offered load is stated
as a multiple of N x the estimated per-worker rate (`common.worker_rate`, no prefix hits assumed). Per point:
TTFT / TPOT / e2e percentiles, goodput under the SLO, prefix hit rate, and the spread of requests over workers.

Bound: a hit saves ~2 x n_params x prefix_len FLOPs of prefill per request (2.5 TFLOP at 1B for 1024 tokens,
~3-4 ms on an H200) and prefix_len x KV bytes/token of pages (32 MB at 1B); what that buys in TTFT depends on
how much of a step is fixed cost, which the step model measures. Goal: ch17/targets.toml [routing.speedup].
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from ch17 import common
from ch17.cluster import EngineWorker, SimWorker, run_cluster
from ch17.routers import POLICIES, PrefixAffinity
from inference.generate import new_paged_cache
from inference.loadgen import poisson_requests
from inference.metrics import summarize
from inference.model import CONFIGS
from inference.scheduler import Engine

LOADS = {"tiny": (0.5, 1.0, 2.0), "small": (0.5, 1.0, 1.5), "full": (0.5, 1.0, 1.5)}
REAL_LOADS = {"tiny": (0.5, 1.5), "small": (0.5, 1.0), "full": (0.6, 1.2)}


def make_workers(mode: str, n: int, size: str, model, sm) -> list:
    s = common.SIZES[size]
    if mode == "sim":
        return [SimWorker(sm, kv_tokens=s["kv_tokens"], page_size=s["page_size"], max_batch=s["max_batch"],
                          token_budget=s["token_budget"]) for _ in range(n)]
    return [EngineWorker(Engine(model, new_paged_cache(model, s["kv_tokens"] // s["page_size"], s["page_size"]),
                                max_batch=s["max_batch"], token_budget=s["token_budget"], prefix_cache=True))
            for _ in range(n)]


def make_router(policy: str, n: int, size: str):
    if policy == PrefixAffinity.name:  # the key: the first two pages (inside every shared prefix)
        return PrefixAffinity(n, key_tokens=2 * common.SIZES[size]["page_size"])
    return POLICIES[policy](n)


_drawn: dict = {}


def requests_for(workload, vocab: int) -> list:
    """Fresh requests for a workload: drawn once (the token lists are the slow part), copied for each policy."""
    key = (workload, vocab)
    if key not in _drawn:
        _drawn.clear()
        _drawn[key] = poisson_requests(workload, vocab)
    return [replace(r, output=[]) for r in _drawn[key]]


def run_point(mode: str, policy: str, n: int, load: float, args, model, sm, vocab: int, n_requests: int,
              admission=None, shared: bool = True, label: str | None = None, keep_requests: bool = False) -> dict:
    """One policy at one offered load on n workers; the same seed gives every policy the same requests.
    keep_requests: the served requests go back in point["_requests"] (not JSON)."""
    rate = load * n * common.worker_rate(sm, args.size, shared)
    reqs = requests_for(common.workload(args.size, n, rate, n_requests, args.seed, shared), vocab)
    workers = make_workers(mode, n, args.size, model, sm)
    res = run_cluster(workers, make_router(policy, n, args.size), reqs, admission, wall_limit_s=args.wall_limit)
    slo = common.SLO[args.size]
    point = {"load": load, "rate": rate, **summarize(reqs, res["makespan_s"], slo["ttft_s"], slo["tpot_s"]),
             "rejected": len(res["rejected"]), "prefix_hit_rate": res["prefix_hit_rate"], "taken": res["taken"],
             "imbalance": max(res["taken"]) * n / max(1, sum(res["taken"]))}
    if mode == "real":  # the real steps against the step model the simulation runs on
        ratios = sorted(dt / sm.step_time(n, kv, rows) for w in workers for n, kv, rows, dt in w.steps)
        point["step_measured_over_model"] = {f"p{q}": ratios[int(q / 100 * (len(ratios) - 1))]
                                             for q in (10, 50, 90)} if ratios else None
    if keep_requests:
        point["_requests"] = reqs
    ms = lambda x: "-" if x is None else f"{x * 1e3:8.1f} ms"  # noqa: E731
    print(f"{mode:>4} N={n:<3} {label or policy:>15} load {load:4.2f} ({rate:8.2f} req/s): TTFT p50 {ms(point['ttft_s']['p50'])}"
          f" p99 {ms(point['ttft_s']['p99'])}, goodput {point['goodput_requests_per_s'] or 0:8.2f} req/s, hits "
          f"{point['prefix_hit_rate']:.0%}, imbalance {point['imbalance']:.2f}, finished {point['finished']}/"
          f"{point['requests']}, rejected {point['rejected']}", flush=True)
    return point


def simulator_check(real_run: dict, args, model, sm, vocab: int) -> list[dict]:
    """The simulation at the real run's size, loads and requests, beside the real figures: how far to trust
    the simulated clusters of 8..64 workers."""
    rows = []
    for policy, points in real_run["points"].items():
        for real in points:
            sim = run_point("sim", policy, real_run["workers"], real["load"], args, model, sm, vocab,
                            real_run["requests"], label=f"{policy} (check)")
            row = {"policy": policy, "load": real["load"]}
            for key, sub in (("ttft_s", "p50"), ("ttft_s", "p99"), ("e2e_s", "p50"), ("output_tokens_per_s", None),
                             ("prefix_hit_rate", None)):
                r, m = (real[key][sub], sim[key][sub]) if sub else (real[key], sim[key])
                row[f"{key}{'_' + sub if sub else ''}"] = {"real": r, "sim": m, "sim_over_real": common.ratio(m, r)}
            rows.append(row)
    within = [r["e2e_s_p50"]["sim_over_real"] for r in rows if r["e2e_s_p50"]["sim_over_real"] is not None]
    if within:
        print(f"simulator vs real (N={real_run['workers']}): e2e p50 sim/real from {min(within):.2f} to {max(within):.2f}")
    return rows


PLOT_ROWS = (("ttft_s", "p99", "TTFT p99 (s)"), ("e2e_s", "p99", "end-to-end p99 (s)"),
             ("goodput_requests_per_s", None, "goodput (req/s in SLO)"))


def plot(report: dict, path: Path, y_keys=PLOT_ROWS) -> None:
    """One column per run (real N, sim N...), one row per metric, one line per policy, x = offered load."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = list(report["runs"].items())
    fig, axes = plt.subplots(len(y_keys), len(panels), figsize=(3.6 * len(panels), 3.2 * len(y_keys)), squeeze=False)
    for col, (label, run) in enumerate(panels):
        for row, (key, sub, name) in enumerate(y_keys):
            ax = axes[row][col]
            for policy, points in run["points"].items():
                ys = [p[key][sub] if sub else p[key] for p in points]
                ax.plot([p["rate"] for p in points], ys, "o-", label=policy)
            ax.set_xlabel("offered load (req/s)")
            ax.set_ylabel(name)
            if sub:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.set_title(label, fontsize=9)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--modes", default="real,sim")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--sim-workers", help="comma-separated cluster sizes to simulate (default: the size's)")
    ap.add_argument("--step-model", type=Path, help="a JSON written by ch17.step_model (else measured now)")
    ap.add_argument("--wall-limit", type=float, default=120.0, help="seconds of real time per point")
    args = ap.parse_args(argv)
    s = common.SIZES[args.size]
    try:
        modes = args.modes.split(",")
        policies = args.policies.split(",")
        sim_n = [int(x) for x in args.sim_workers.split(",")] if args.sim_workers else list(s["sim_workers"])
        if not set(modes) <= {"real", "sim"} or not set(policies) <= set(POLICIES) or min(sim_n) < 1:
            raise ValueError("--modes is real,sim; --policies from " + ",".join(POLICIES) + "; workers >= 1")
    except ValueError as e:
        print(f"routing: {e}", file=sys.stderr)
        return 2
    loaded = common.model_and_step_model(args, modes, "routing")
    if loaded is None:
        return 2
    model, sm = loaded
    vocab = CONFIGS[s["config"]].vocab
    runs = {}
    for mode in modes:
        for n in ([s["real_workers"]] if mode == "real" else sim_n):
            loads = REAL_LOADS[args.size] if mode == "real" else LOADS[args.size]
            n_req = s["real_requests"] if mode == "real" else s["sim_requests_per_worker"] * n
            points = {p: [] for p in policies}
            for load in loads:  # every policy at one load before the next: they share one draw of requests
                for p in policies:
                    points[p].append(run_point(mode, p, n, load, args, model, sm, vocab, n_req))
            runs[f"{mode} N={n}"] = {"mode": mode, "workers": n, "requests": n_req, "points": points}
    validation = simulator_check(runs["real N=%d" % s["real_workers"]], args, model, sm, vocab) \
        if "real" in modes and "sim" in modes else None
    goals = []
    for label, run in runs.items():  # judged at each run's highest load, if both policies ran
        pts = run["points"]
        if {"round_robin", "prefix_affinity"} <= pts.keys():
            rr, pa = pts["round_robin"][-1], pts["prefix_affinity"][-1]
            ratio = None if not pa["ttft_s"]["p99"] or rr["ttft_s"]["p99"] is None else \
                rr["ttft_s"]["p99"] / pa["ttft_s"]["p99"]
            goals.append({"run": label, **common.goal("routing", f"{label}: round-robin / prefix-affinity TTFT p99 "
                                                      "at the highest load", ratio, common.arch_of(args.device))})
    report = common.write(args, "routing", model, step_model=sm.as_dict(), slo=common.SLO[args.size],
                          simulator_vs_real=validation,
                          worker_rate=common.worker_rate(sm, args.size), goals=goals, runs=runs)
    if args.plot:
        plot(report, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
