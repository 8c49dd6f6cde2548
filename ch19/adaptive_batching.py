"""Adaptive batching: a controller sets the engine's token budget every step from the measured step time against
the latency SLO, compared with every fixed budget (a sweep) under the same load; regret against the best.

    python -m ch19.adaptive_batching --size tiny|small|full [--json OUT] [--plot OUT.png]

The token budget caps the tokens one step carries (one per decoding sequence plus prefill chunks): a large
budget prefills long prompts in few steps (low TTFT, high throughput) but every decode sharing those steps waits
for the chunk (high TPOT); a small one protects TPOT and queues the prompts. The best fixed budget depends on
the model, the GPU and the traffic, which is why it is a knob to adapt. The controller (AIMD, as TCP's
congestion window), on a moving average of the step time (one slow step is noise, a TPOT is a mean): if the
average exceeds the target (0.8 x the TPOT SLO) the budget halves and the average restarts; if it is under
0.6 x the target and the step used its whole budget, the budget grows by 25%. The batch limit stays fixed: a
decode adds one token to a step, so the budget already bounds what a step carries.

The SLO is set from the device, so it binds on any machine: first the engine's decode step is timed (a full
batch of short requests, no prefill), then TPOT SLO = 3 x that step and TTFT SLO = 60 x that step. Goodput is
requests meeting both per second. The load: long prompts (mean 4-8x the output) at a Poisson rate that keeps the
engine busy. Regret = (best fixed goodput - adaptive goodput) / best fixed goodput, where "best" is known only
after the sweep; the controller had no sweep.

Bound: a step costs ~max(2 P n_tokens / peak FLOP/s, weight bytes / HBM bandwidth) + the Python step; the budget
moves the first term, so the controller trades prefill throughput for decode latency along that line.
"""
from __future__ import annotations

import statistics
import sys

from ch16 import serving
from ch19.engine_loop import closed_loop, serve_with
from inference.bench import make_engine
from inference.loadgen import poisson_requests
from inference.metrics import summarize
from inference.scheduler import Request

# fixed budgets swept, the Poisson rate, requests, prompt/output means per size
LOAD = {"tiny": dict(budgets=[16, 64, 256], rate=200.0, requests=24, prompt_mean=48, output_mean=12, max_prompt=160),
        "small": dict(budgets=[64, 256, 1024, 4096], rate=24.0, requests=48, prompt_mean=512, output_mean=96,
                      max_prompt=1536),
        "full": dict(budgets=[128, 512, 2048, 8192], rate=16.0, requests=48, prompt_mean=1024, output_mean=128,
                     max_prompt=3072)}


class AimdBudget:
    """The token budget, halved when a step overshoots the target time, grown 25% when one is well under it."""

    def __init__(self, target_s: float, lo: int, hi: int, start: int):
        self.target, self.lo, self.hi, self.budget = target_s, lo, hi, start
        self.trace: list[int] = []
        self.avg: float | None = None

    def before(self, engine) -> None:
        engine.token_budget = self.budget

    def after(self, engine, seconds: float, _finished) -> None:
        full = engine.step_tokens and engine.step_tokens[-1] >= 0.9 * self.budget
        self.avg = seconds if self.avg is None else 0.8 * self.avg + 0.2 * seconds
        if self.avg > self.target:
            self.budget = max(self.lo, self.budget // 2)
            self.avg = None
        elif self.avg < 0.6 * self.target and full:
            self.budget = min(self.hi, int(self.budget * 1.25) + 1)
        self.trace.append(self.budget)


def decode_step_s(model, s: dict) -> float:
    """The median time of a decode-only step with the engine's full batch (short prompts, no prefill)."""
    engine = make_engine(model, {"continuous", "paged"}, s["kv_tokens"], s["page_size"], 64, s["max_batch"], 4096)
    times = []
    closed_loop(engine, lambda rid: Request(rid, [1 + rid % 7] * 4, 40), s["max_batch"], 30,
                after=lambda e, sec, f: times.append((sec, e.step_tokens[-1])))
    decode = [sec for sec, n in times if n <= s["max_batch"]]
    return statistics.median(decode[2:] or decode)


def run(model, s: dict, w, budget: int | None, slo: dict, deadline: float, controller=None) -> dict:
    engine = make_engine(model, {"continuous", "paged"}, s["kv_tokens"], s["page_size"],
                         min(model.cfg.max_seq, w.max_prompt + w.max_output), s["max_batch"], budget or 1)
    reqs = poisson_requests(w, model.cfg.vocab)
    hooks = {"before": controller.before, "after": controller.after} if controller else {}
    makespan = serve_with(engine, reqs, deadline_s=deadline, **hooks)
    return summarize(reqs, makespan, slo["ttft_s"], slo["tpot_s"]) | {"steps": engine.steps}


def plot(rows: dict, trace: list[int], path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    fixed = [(int(k), v["goodput_requests_per_s"] or 0) for k, v in rows.items() if k != "adaptive"]
    a.plot([k for k, _ in fixed], [v for _, v in fixed], "o-", label="fixed budget")
    a.axhline(rows["adaptive"]["goodput_requests_per_s"] or 0, color="C1", ls="--", label="adaptive (AIMD)")
    a.set_xscale("log", base=2)
    a.set_xlabel("token budget")
    a.set_ylabel("goodput (requests/s within SLO)")
    a.legend()
    b.plot(trace)
    b.set_yscale("log", base=2)
    b.set_xlabel("step")
    b.set_ylabel("controller's token budget")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = serving.parser(__doc__).parse_args(argv)
    model = serving.load_model(args, "adaptive_batching")
    if model is None:
        return 2
    s, load = serving.SIZES[args.size], LOAD[args.size]
    step_s = decode_step_s(model, s)
    slo = {"ttft_s": 60 * step_s, "tpot_s": 3 * step_s}
    print(f"decode step {step_s * 1e3:.2f} ms at batch {s['max_batch']}: SLO TTFT {slo['ttft_s'] * 1e3:.0f} ms, "
          f"TPOT {slo['tpot_s'] * 1e3:.1f} ms")
    w = serving.workload(args.size, rate=load["rate"], n_requests=load["requests"], prompt_mean=load["prompt_mean"],
                         output_mean=load["output_mean"], max_prompt=load["max_prompt"])
    rows = {}
    for budget in load["budgets"]:
        rows[str(budget)] = run(model, s, w, budget, slo, args.deadline)
    budgets = load["budgets"]
    ctl = AimdBudget(0.8 * slo["tpot_s"], budgets[0], budgets[-1], budgets[len(budgets) // 2])
    rows["adaptive"] = run(model, s, w, None, slo, args.deadline, ctl)
    for name, r in rows.items():
        print(f"{name:>9}: goodput {r['goodput_requests_per_s'] or 0:6.2f} req/s, SLO met {r['slo_attainment']:.2f}, "
              f"TTFT p99 {serving._ms(r['ttft_s']['p99'])}, TPOT p99 {serving._ms(r['tpot_s']['p99'])}, "
              f"{r['output_tokens_per_s'] or 0:8.1f} out tok/s", flush=True)
    fixed = {k: r["goodput_requests_per_s"] or 0.0 for k, r in rows.items() if k != "adaptive"}
    best, worst = max(fixed, key=fixed.get), min(fixed, key=fixed.get)
    adaptive = rows["adaptive"]["goodput_requests_per_s"] or 0.0
    regret = (fixed[best] - adaptive) / fixed[best] if fixed[best] > 0 else None
    print(f"best fixed budget {best} ({fixed[best]:.2f} req/s), worst {worst} ({fixed[worst]:.2f}), adaptive "
          f"{adaptive:.2f}: regret {regret if regret is None else f'{regret:.3f}'}")
    goals = [serving.goal("regret of the adaptive budget vs the best fixed one (goodput)", regret, "<=", 0.1,
                          "project claim: AIMD on the step time finds the best fixed budget's goodput within 10%"),
             serving.goal("adaptive goodput / worst fixed goodput", serving.ratio(adaptive, fixed[worst]) if
                          fixed[worst] > 0 else None, ">=", 1.0, "the controller never does worse than the worst")]
    plot_path, args.plot = args.plot, None  # this comparison's own plot, not the latency-throughput one
    serving.write(args, "adaptive_batching", model, {}, goals, slo_calibrated=slo, decode_step_s=step_s,
                  workload=w.as_dict(), rows=rows, best_fixed=best, worst_fixed=worst, regret=regret,
                  budget_trace=ctl.trace[:: max(1, len(ctl.trace) // 400)])
    if plot_path:
        plot(rows, ctl.trace, plot_path, f"adaptive batching, {serving.SIZES[args.size]['config']} on {args.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
