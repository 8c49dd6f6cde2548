"""A reinforcement-learning agent for runtime tuning: a UCB1 bandit picks the engine's knobs (token budget, batch
limit, precision) window by window from the measured reward, against the best static setting found offline.

    python -m ch19.bandit_tuner --size tiny|small|full [--windows N] [--json OUT] [--plot OUT.png]

The load is closed-loop (a fixed number of requests always in flight, lengths from the seeded log-normal
workload), so a setting's reward does not drift with time and the arms can be compared. An arm is one
(token_budget, max_batch, precision) triple (in this engine a prefill chunk is what the token budget leaves
after the step's decodes, so the budget is also the chunk size); a window is a fixed number of engine steps under one arm, and its
reward is:
    output tokens/s in the window x min(1, TPOT target / mean step time)^2 x quality,
where the TPOT target is 3 x a decode step of the bf16 engine (measured first, as in adaptive_batching) and
quality is 1 in bf16 and FP8's teacher-forced top-1 agreement with bf16 (dynamic_precision.agreement) in FP8:
fast is good, fast beyond the latency target is penalised, FP8 pays for the tokens it would change.

Offline: every arm runs `--offline` windows (after one warm-up window) and the best mean reward is the best
static setting. Online: UCB1 (mean reward + c sqrt(ln t / n), rewards scaled by the largest seen so far) starts
cold and picks an arm each window. c = 0.5, not the textbook sqrt(2): with ~50 windows for 12 arms the textbook
bonus outweighs any difference in mean reward and the agent plays nearly round-robin to the end (seen on the
CPU run); a smaller c exploits sooner at the risk of settling on a second-best arm (`--c` sets it). The learning
curve is its reward per window against the best static mean, and its regret is the reward it gave up. A bandit
pays to explore every arm; it wins only if the best arm changes or is not known ahead, which the offline sweep
here assumes away: the comparison shows the price of learning online.

Bound: a window costs its steps (a step: ~max(FLOPs / peak, weight bytes / bandwidth) + the Python step); the
agent's bookkeeping is microseconds. The best arm's reward is the engine's tokens/s at that setting.
"""
from __future__ import annotations

import itertools
import math
import random
import sys
import time

import torch

from ch16 import serving
from ch19.adaptive_batching import decode_step_s
from ch19.dynamic_precision import agreement, make_switchable
from ch19.engine_loop import timed_step
from inference.bench import make_engine
from inference.loadgen import poisson_requests
from inference.scheduler import Request

KNOBS = {"tiny": dict(budgets=[32, 128], batches=[2, 4], concurrency=6, window=6, windows=40, offline=2),
         "small": dict(budgets=[128, 512, 2048], batches=[8, 32], concurrency=48, window=10, windows=48, offline=2),
         "full": dict(budgets=[256, 1024, 4096], batches=[8, 32], concurrency=48, window=10, windows=48, offline=2)}


class UCB1:
    """UCB1 with an exploration weight c (the textbook bound is c = sqrt(2))."""

    def __init__(self, n_arms: int, c: float = 0.5, seed: int = 0):
        self.c = c
        self.counts, self.sums = [0] * n_arms, [0.0] * n_arms
        self.scale, self.t = 1e-12, 0
        self.rng = random.Random(seed)

    def pick(self) -> int:
        self.t += 1
        untried = [i for i, c in enumerate(self.counts) if c == 0]
        if untried:
            return self.rng.choice(untried)
        return max(range(len(self.counts)), key=lambda i: self.sums[i] / self.counts[i] / self.scale
                   + self.c * math.sqrt(math.log(self.t) / self.counts[i]))

    def update(self, arm: int, reward: float) -> None:
        self.counts[arm] += 1
        self.sums[arm] += reward
        self.scale = max(self.scale, reward)


class Tuned:
    """A closed-loop engine that runs windows of steps under the arm it is given and returns their reward."""

    def __init__(self, model, state, s: dict, knobs: dict, target_s: float, quality: dict, size: str):
        self.model, self.state, self.target, self.quality, self.window = model, state, target_s, quality, knobs["window"]
        w = serving.workload(size)
        self.protos = poisson_requests(w, model.cfg.vocab)
        self.engine = make_engine(model, {"continuous", "paged"}, s["kv_tokens"], s["page_size"],
                                  min(model.cfg.max_seq, w.max_prompt + w.max_output), max(knobs["batches"]), 1)
        self.rid = 0
        for _ in range(knobs["concurrency"]):
            self._add()

    def _add(self) -> None:
        p = self.protos[self.rid % len(self.protos)]
        self.engine.add(Request(self.rid, list(p.prompt), p.max_new_tokens))
        self.rid += 1

    def run_window(self, arm: tuple) -> float:
        budget, batch, mode = arm
        e = self.engine
        e.token_budget, e.max_batch, self.state.mode = budget, batch, mode
        tokens, times = 0, []
        for _ in range(self.window):
            live = list(e.running) + list(e.waiting)  # preempted requests keep their tokens: count them all
            before = sum(len(r.output) for r in live)
            finished = timed_step(e, after=lambda _e, sec, _f: times.append(sec))
            tokens += sum(len(r.output) for r in {id(r): r for r in live + e.running + finished}.values()) - before
            for _ in finished:
                self._add()
        seconds = sum(times)
        step = seconds / self.window
        return tokens / seconds * min(1.0, self.target / step) ** 2 * self.quality[mode]


def plot(curve: list[float], arms: list[int], best: float, names: list[str], path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(curve, ".", alpha=0.5, label="reward per window")
    run_mean = [sum(curve[:i + 1]) / (i + 1) for i in range(len(curve))]
    a.plot(run_mean, label="UCB1 running mean")
    a.axhline(best, color="C2", ls="--", label="best static (offline)")
    a.set_xlabel("window")
    a.set_ylabel("reward (SLO-weighted tokens/s)")
    a.legend(fontsize=8)
    b.plot(arms, ".")
    b.set_yticks(range(len(names)), names, fontsize=6)
    b.set_xlabel("window")
    b.set_title("arm chosen", fontsize=9)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = serving.parser(__doc__)
    ap.add_argument("--windows", type=int, help="online windows (default per size)")
    ap.add_argument("--c", type=float, default=0.5, help="UCB exploration weight")
    args = ap.parse_args(argv)
    if (args.windows is not None and args.windows < 1) or args.c < 0:
        ap.error("--windows must be positive and --c non-negative")
    model = serving.load_model(args, "bandit_tuner")
    if model is None:
        return 2
    s, k = serving.SIZES[args.size], KNOBS[args.size]
    windows = args.windows or k["windows"]
    target = 3 * decode_step_s(model, s)
    state = make_switchable(model)
    probe = torch.randint(0, model.cfg.vocab, (2, min(128, model.cfg.max_seq)), device=args.device,
                          generator=torch.Generator(device=args.device).manual_seed(3))
    quality = {"bf16": 1.0, "fp8": agreement(model, state, probe)["top1_agreement"]}
    arms = list(itertools.product(k["budgets"], k["batches"], ("bf16", "fp8")))
    names = [f"{b}/{m}/{p}" for b, m, p in arms]
    print(f"{len(arms)} arms (budget/batch/precision), TPOT target {target * 1e3:.1f} ms, FP8 quality "
          f"{quality['fp8']:.4f}")
    offline = []
    for arm, name in zip(arms, names, strict=True):
        t = Tuned(model, state, s, k, target, quality, args.size)
        t.run_window(arm)  # warm-up: the batch fills to this arm's limits
        rewards = [t.run_window(arm) for _ in range(k["offline"])]
        offline.append(sum(rewards) / len(rewards))
        print(f"offline {name:>16}: reward {offline[-1]:9.1f}", flush=True)
    best = max(range(len(arms)), key=offline.__getitem__)
    agent, tuned = UCB1(len(arms), args.c), Tuned(model, state, s, k, target, quality, args.size)
    curve, chosen = [], []
    t0 = time.perf_counter()
    for _ in range(windows):
        if time.perf_counter() - t0 > args.deadline:
            print(f"online phase cut at --deadline {args.deadline:g} s after {len(curve)} windows")
            break
        a = agent.pick()
        r = tuned.run_window(arms[a])
        agent.update(a, r)
        curve.append(r)
        chosen.append(a)
    state.mode = "bf16"
    tail = curve[len(curve) // 2:]
    tail_mean = sum(tail) / len(tail)
    regret = sum(offline[best] - r for r in curve)
    most = max(range(len(arms)), key=agent.counts.__getitem__)
    print(f"best static {names[best]} ({offline[best]:.1f}); UCB1 mean over the second half {tail_mean:.1f} "
          f"({tail_mean / offline[best]:.2f}x), most played {names[most]} ({agent.counts[most]}/{windows}), "
          f"cumulative regret {regret:.1f}")
    goals = [serving.goal("UCB1's mean reward over its second half / the best static arm's", tail_mean / offline[best]
                          if offline[best] > 0 else None, ">=", 0.9,
                          "project claim: after exploring, the agent runs within 10% of the best static setting")]
    plot_path, args.plot = args.plot, None
    serving.write(args, "bandit_tuner", model, {}, goals, arms=names, tpot_target_s=target, quality=quality,
                  offline_reward=dict(zip(names, offline, strict=True)), best_static=names[best], curve=curve,
                  chosen=[names[i] for i in chosen], counts=dict(zip(names, agent.counts, strict=True)),
                  cumulative_regret=regret, knobs=k, ucb_c=args.c)
    if plot_path:
        plot(curve, chosen, offline[best], names, plot_path,
             f"UCB1 over {len(arms)} engine settings, {s['config']} on {args.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
