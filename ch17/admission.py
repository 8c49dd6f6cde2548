"""Early rejection under overload: admit a request only if its predicted TTFT meets the SLO.

    python -m ch17.admission --size full --json admission.json --plot admission.png

Past capacity, a queue that admits everything grows for as long as the overload lasts: every request waits behind
all earlier ones, so TTFT grows for all of them and soon nobody meets the SLO: goodput (requests per second that
met it) collapses while the server is busier than ever. Refusing at the door the requests that cannot make it
(a fast "try again" the client can take elsewhere) keeps the queue short enough that the admitted ones do.

The prediction (`PredictedTTFT`) uses only what the worker knows at arrival and its measured capacity (the step
model of `ch17.step_model`): the prompt tokens queued ahead of the request plus its own, prefilled at
(token budget - running decodes) tokens per step, each step as long as the step model says for those tokens and
the worker's live KV; plus, when the batch is full, the steps until a slot frees (the queue beyond the batch
limit, times the mean remaining output of the running requests over the batch size); plus what is left of the
step in flight. Admit iff the prediction <= SLO TTFT x margin.

Runs: `sim` (N simulated workers, least-outstanding-tokens routing) and `real` (engines on their own clocks,
`ch17.cluster`), each at offered loads of 0.5x to 3x the estimated capacity (`common.worker_rate`), admitting
everything vs early rejection. Reported per point: goodput, SLO attainment over all offered requests, TTFT p99
of the admitted, the rejected count, and how the predicted TTFT compared with the measured one.

Bound: goodput cannot exceed what the cluster completes within the SLO at capacity; with early rejection it
should stay near that plateau as load rises, without it fall towards zero. Goal: targets.toml [admission.speedup].
"""
from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

from ch17 import common, routing


class PredictedTTFT:
    def __init__(self, step_model, slo_ttft: float, margin: float = 1.0):
        self.sm, self.slo, self.margin = step_model, slo_ttft, margin
        self.predicted: dict[int, float] = {}

    def predict(self, req, worker) -> float:
        budget, max_batch = self.sm.budget, self.sm.max_batch
        ahead = worker.pending_prefill_tokens() + len(req.prompt)
        decoding = worker.n_decoding()
        step = self.sm.step_time(min(budget, ahead + decoding), worker.kv_tokens() + ahead, 1 + decoding)
        steps = math.ceil(ahead / max(1, budget - decoding))
        batch, queued = worker.batch(), len(worker.queue())
        if queued >= max_batch and batch:  # no free slot: wait for running requests to finish
            remaining = statistics.fmean(r.max_new_tokens - len(r.output) for r in batch)
            steps += math.ceil((queued - max_batch + 1) * remaining / len(batch))
        return max(0.0, worker.clock - req.arrival) + steps * step  # the step in flight ends first

    def __call__(self, req, worker) -> bool:
        t = self.predict(req, worker)
        if t > self.slo * self.margin:
            return False
        self.predicted[req.rid] = t
        return True


def prediction_error(policy: PredictedTTFT, point_reqs) -> dict | None:
    """Measured / predicted TTFT over the admitted requests that finished."""
    ratios = [(r.first_token_time - r.arrival) / policy.predicted[r.rid] for r in point_reqs
              if r.rid in policy.predicted and r.first_token_time is not None and policy.predicted[r.rid] > 0]
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "p90": sorted(ratios)[int(0.9 * (len(ratios) - 1))]}


LOADS = {"tiny": (0.5, 1.0, 3.0), "small": (0.5, 1.0, 2.0, 3.0), "full": (0.5, 1.0, 1.5, 2.0, 3.0)}
REAL_LOADS = {"tiny": (0.5, 3.0), "small": (0.5, 1.0, 3.0), "full": (0.5, 1.0, 3.0)}


def main(argv=None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--modes", default="real,sim")
    ap.add_argument("--sim-workers", type=int, help="workers in the simulation (default: the size's smallest)")
    ap.add_argument("--real-workers", type=int, default=2)
    ap.add_argument("--margin", type=float, default=1.0, help="admit if predicted TTFT <= SLO x margin")
    ap.add_argument("--step-model", type=Path, help="a JSON written by ch17.step_model (else measured now)")
    ap.add_argument("--wall-limit", type=float, default=120.0, help="seconds of real time per point")
    args = ap.parse_args(argv)
    s = common.SIZES[args.size]
    modes = args.modes.split(",")
    if not set(modes) <= {"real", "sim"} or args.margin <= 0 or args.real_workers < 1 or (args.sim_workers or 1) < 1:
        print("admission: --modes is real,sim; --margin > 0; worker counts >= 1", file=sys.stderr)
        return 2
    loaded = common.model_and_step_model(args, modes, "admission")
    if loaded is None:
        return 2
    model, sm = loaded
    vocab = routing.CONFIGS[s["config"]].vocab
    slo = common.SLO[args.size]
    runs = {}
    for mode in modes:
        n = args.real_workers if mode == "real" else (args.sim_workers or s["sim_workers"][0])
        n_req = s["real_requests"] if mode == "real" else 3 * s["sim_requests_per_worker"] * n  # a backlog builds
        points = {"admit_all": [], "early_rejection": []}
        for load in (REAL_LOADS if mode == "real" else LOADS)[args.size]:
            for name in points:
                policy = PredictedTTFT(sm, slo["ttft_s"], args.margin) if name == "early_rejection" else None
                p = routing.run_point(mode, "least_tokens", n, load, args, model, sm, vocab, n_req,
                                      admission=policy, shared=False, label=name,
                                      keep_requests=policy is not None)
                if policy is not None:
                    p["measured_over_predicted_ttft"] = prediction_error(policy, p.pop("_requests"))
                p.pop("_requests", None)
                points[name].append(p)
        runs[f"{mode} N={n}"] = {"mode": mode, "workers": n, "requests": n_req, "points": points}
    goals = []
    for label, run in runs.items():
        off, on = run["points"]["admit_all"][-1], run["points"]["early_rejection"][-1]
        a, b = on["goodput_requests_per_s"], off["goodput_requests_per_s"]
        ratio = None if a is None or b is None else (math.inf if b == 0 and a > 0 else a / b if b else None)
        judged = common.goal("admission", f"{label}: goodput with / without early rejection at {off['load']}x load",
                             ratio, common.arch_of(args.device))
        if a == 0 and b == 0 and judged["target"] is not None:
            # 0 / 0 shows nothing: the claim is that rejection keeps goodput, so none kept is a miss
            judged.update(met=False, why="no request met the SLO with early rejection or without")
            print(f"goal: {label}: MISSED ({judged['why']})")
        goals.append({"run": label, **judged})
        peak = max(p["goodput_requests_per_s"] or 0 for p in run["points"]["early_rejection"])
        run["goodput_held"] = (on["goodput_requests_per_s"] or 0) / peak if peak else None
        print(f"{label}: with early rejection, goodput at the highest load is {run['goodput_held'] or 0:.0%} of its peak")
    report = common.write(args, "admission", model, step_model=sm.as_dict(), slo=slo, margin=args.margin,
                          worker_rate=common.worker_rate(sm, args.size, shared=False), goals=goals, runs=runs)
    if args.plot:
        routing.plot(report, args.plot, (("goodput_requests_per_s", None, "goodput (req/s in SLO)"),
                                         ("slo_attainment", None, "SLO attainment (of offered)"),
                                         ("ttft_s", "p99", "TTFT p99 of admitted (s)")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
