"""SLO-aware admission in front of the engine's scheduler: reject (or defer) a request whose predicted TTFT
already exceeds the SLO, so that the requests admitted still meet it.

    python -m ch18.slo_admission --size full --json slo_admission.json --plot slo_admission.png

Past saturation a first-come-first-served queue grows without bound and every request's TTFT with it: the
engine keeps its tokens/s but goodput (requests/s that met the SLO) collapses to zero. Admission control turns
that around: a request that cannot make its TTFT SLO is refused at arrival (`reject`; the client can retry
elsewhere) or put behind the others and served only from spare capacity (`defer`), and the queue stays short
enough for everyone admitted to meet it.

The prediction, at arrival: TTFT = (prompt tokens still to prefill ahead of it + its own) / prefill tokens per
step x the measured time per step (an exponential average over recent steps), where prefill tokens per step =
the step's token budget minus one per running decode. It ignores batch-slot and KV-page limits (it is
optimistic there) and needs no model of the GPU: the engine measures its own steps.

`SLOAdmission` wraps `inference.scheduler.Engine` (a subclass: `add` decides, `step` measures); the engine is
unchanged. Measured with the load generator at several offered loads: goodput and SLO attainment, with the
policy (`reject`, `defer`) and without (`none`), same seeded requests.

Bound: goodput <= min(offered load, the engine's capacity in requests/s); with admission control it should
track the capacity past saturation instead of falling. Goal (project claim): at the highest offered load,
reject's goodput >= 1.5x that without admission control.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import deque
from pathlib import Path

import torch

from inference.generate import new_paged_cache
from inference.loadgen import Workload, poisson_requests, serve
from inference.metrics import summarize
from inference.scheduler import Engine, Request

POLICIES = ("none", "reject", "defer")
# model config, requests per point, length distribution, engine limits, SLO and offered loads (requests/s) per size
SIZES = {"tiny": dict(config="tiny", requests=24, prompt_mean=24, output_mean=8, max_prompt=64, max_output=32,
                      kv_tokens=4096, max_batch=8, token_budget=64, page_size=16, slo_ttft=0.05, slo_tpot=1.0,
                      rates=(20.0, 400.0)),
         "small": dict(config="small", requests=64, prompt_mean=256, output_mean=64, max_prompt=1024, max_output=256,
                       kv_tokens=65536, max_batch=32, token_budget=1024, page_size=16, slo_ttft=0.5, slo_tpot=0.1,
                       rates=(4.0, 16.0, 64.0)),
         "full": dict(config="1b", requests=64, prompt_mean=512, output_mean=64, max_prompt=2048, max_output=256,
                      kv_tokens=131072, max_batch=32, token_budget=1024, page_size=16, slo_ttft=0.5, slo_tpot=0.1,
                      rates=(16.0, 64.0, 256.0))}


class SLOAdmission(Engine):
    def __init__(self, *args, slo_ttft: float, policy: str = "reject", ewma: float = 0.2, **kwargs):
        super().__init__(*args, **kwargs)
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.slo_ttft, self.policy, self.ewma = slo_ttft, policy, ewma
        self.step_s: float | None = None   # measured seconds per step (None until the first step)
        self.rejected: list[Request] = []
        self.deferred: deque[Request] = deque()
        self.predictions: dict[int, float] = {}

    def predict_ttft(self, req: Request) -> float:
        if self.step_s is None:
            return 0.0  # nothing measured yet: admit
        ahead = sum(len(r.tokens) - r.n_computed for r in self.waiting)
        ahead += sum(max(0, len(r.prompt) - r.n_computed) for r in self.running)
        decoding = sum(1 for r in self.running if r.n_computed >= len(r.prompt))
        per_step = max(1, self.token_budget - decoding)
        steps = math.ceil((ahead + len(req.prompt)) / per_step)
        return max(0.0, self.clock() - req.arrival) + steps * self.step_s

    def add(self, req: Request) -> None:
        predicted = self.predict_ttft(req)
        self.predictions[req.rid] = predicted
        if self.policy == "none" or predicted <= self.slo_ttft:
            super().add(req)
        elif self.policy == "reject":
            self.rejected.append(req)
        else:
            self.deferred.append(req)

    def has_work(self) -> bool:
        return super().has_work() or bool(self.deferred)

    def step(self) -> list[Request]:
        if self.deferred and not self.waiting:  # spare capacity: a deferred request joins
            super().add(self.deferred.popleft())
        t0 = self.clock()
        finished = super().step()
        dt = self.clock() - t0
        if finished or self.running:
            self.step_s = dt if self.step_s is None else (1 - self.ewma) * self.step_s + self.ewma * dt
        return finished


def run_point(model, s: dict, policy: str, rate: float, seed: int, deadline_s: float) -> dict:
    w = Workload(rate=rate, n_requests=s["requests"], prompt_mean=s["prompt_mean"], output_mean=s["output_mean"],
                 max_prompt=s["max_prompt"], max_output=s["max_output"], seed=seed)
    cache = new_paged_cache(model, s["kv_tokens"] // s["page_size"], s["page_size"])
    engine = SLOAdmission(model, cache, max_batch=s["max_batch"], token_budget=s["token_budget"],
                          slo_ttft=s["slo_ttft"], policy=policy)
    reqs = poisson_requests(w, model.cfg.vocab)
    makespan = serve(engine, reqs, deadline_s)
    point = {"policy": policy, "rate": rate, **summarize(reqs, makespan, s["slo_ttft"], s["slo_tpot"]),
             "rejected": len(engine.rejected), "deferred_unserved": len(engine.deferred),
             "mean_step_ms": None if engine.step_s is None else engine.step_s * 1e3}
    print(f"{policy:>7} rate {rate:>7.1f}/s: goodput {point['goodput_requests_per_s'] or 0:7.2f} req/s, "
          f"SLO met {point['slo_attainment'] or 0:.0%}, finished {point['finished']}/{point['requests']}, "
          f"rejected {point['rejected']}, TTFT p99 {point['ttft_s']['p99'] or 0:.3f} s", flush=True)
    return point


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for policy, points in report["series"].items():
        rates = [p["rate"] for p in points]
        axes[0].plot(rates, [p["goodput_requests_per_s"] or 0 for p in points], "o-", label=policy)
        axes[1].plot(rates, [100 * (p["slo_attainment"] or 0) for p in points], "o-", label=policy)
    axes[0].set_ylabel("goodput (requests/s meeting the SLO)")
    axes[1].set_ylabel("requests meeting the SLO (%)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("offered load (requests/s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    slo = report["slo"]
    dev = report["provenance"]["device"].get("name", "?")
    fig.suptitle(f"SLO-aware admission, {report['config']} on {dev}: TTFT <= {slo['ttft_s']} s, "
                 f"TPOT <= {slo['tpot_s']} s", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="full", choices=list(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--rates", default=None, help="offered loads in requests/s, comma-separated (default: the size's)")
    ap.add_argument("--deadline", type=float, default=60.0, help="seconds per point before it is cut short")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    s = dict(SIZES[args.size])
    try:
        policies = args.policies.split(",")
        if not policies or any(p not in POLICIES for p in policies):
            raise ValueError(f"--policies: a comma-separated subset of {POLICIES}")
        if args.rates:
            s["rates"] = tuple(float(r) for r in args.rates.split(","))
        if any(not r > 0 for r in s["rates"]):
            raise ValueError("--rates must be positive")
    except ValueError as e:
        print(f"slo_admission: {e}", file=sys.stderr)
        return 2
    from ch16.serving import load_model
    model = load_model(argparse.Namespace(device=args.device, size=args.size, threads=args.threads), "slo_admission")
    if model is None:
        return 2
    threads = {"threads": torch.get_num_threads(), "cores": os.cpu_count()} if args.device == "cpu" else None
    from harness.device import provenance
    report = {"name": "slo_admission", "provenance": provenance(torch.device(args.device), size=args.size,
                                                                threads=threads),
              "config": s["config"], "engine": {k: s[k] for k in ("kv_tokens", "max_batch", "token_budget", "page_size")},
              "slo": {"ttft_s": s["slo_ttft"], "tpot_s": s["slo_tpot"]}, "series": {}}
    for policy in policies:
        report["series"][policy] = [run_point(model, s, policy, r, args.seed, args.deadline) for r in s["rates"]]
    goals = []
    if "none" in report["series"] and "reject" in report["series"]:
        base, ours = report["series"]["none"][-1], report["series"]["reject"][-1]
        value = None if not base["goodput_requests_per_s"] else ours["goodput_requests_per_s"] / base["goodput_requests_per_s"]
        met = None if value is None else value >= 1.5
        if base["goodput_requests_per_s"] == 0 and ours["goodput_requests_per_s"]:
            value, met = math.inf, True
        elif base["goodput_requests_per_s"] == 0:
            met = False   # no goodput with rejection or without: the claim (rejection keeps it) is not shown
        goals.append({"what": "goodput at the highest load: reject / none", "value": None if value == math.inf else value,
                      "op": ">=", "target": 1.5, "met": met, "source": "project claim"})
        print(f"goal: goodput at the highest load, reject / none >= 1.5: "
              f"{'-' if value is None else f'{value:.3g}'} -> {'met' if met else 'MISSED' if met is False else 'not measured'}")
    report["goals"] = goals
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(report, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
