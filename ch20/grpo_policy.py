"""A policy over the search templates' knobs, trained with GRPO on the verifier's staged reward.

    python -m ch20.grpo_policy [--reward synthetic|measured] [--steps 40] [--group 8] [--budget 6]
                               [--table T.json] [--json OUT] [--png OUT]

What it is: a log-linear policy over the discrete configurations of the Triton templates
(ch20/generators/templates). Each (knob, value) pair, e.g. num_warps=8 or mode=looped, has one weight,
shared by every problem whose template has that knob; a configuration's probability within a problem
is softmax(sum of its pairs' weights). A training step samples a group of G configurations per
training problem, scores each with ch20.reward (0 / 0.1 / 1 + clip(log2 speedup, 0, 3)), turns the
rewards into GRPO's group-relative advantages (ch20.reward.group_advantages), and takes clipped-ratio
policy-gradient steps (PPO's clip at 1 +- 0.2, two epochs per batch, a small KL penalty to the uniform
start). It is then compared, at an equal budget of verified candidates, with random search and with the
evolutionary search generator on problems it was not trained on.

What it is not: a language model, or a verifier in the loop at every sample. The reward comes from a
table of verdicts, one per configuration, made beforehand:
- `synthetic` (the CPU default, used by the tests): a deterministic stand-in, NOT a measurement. Each
  (knob, value) has a fixed effect on time shared across problems, plus per-problem noise, and 5% of
  configurations are marked wrong. It shows the mechanics and that transfer works when shared structure
  exists; it says nothing about real kernels.
- `measured` (CUDA): every sampled configuration of each problem's template compiled, checked against
  the reference on fresh normal inputs, and timed (harness.timing, the reference timed the same way) in
  this process; the verifier's sandboxed, interleaved timing is not used here, for speed.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import zlib
from pathlib import Path

import torch

from ch20.generators import Attempt, Context, Proposal
from ch20.generators.templates import template_for
from ch20.problem import load_problem
from ch20.reward import group_advantages, reward_from_verdict

REPO = Path(__file__).resolve().parent.parent
PROBLEMS_DIR = REPO / "ch20/problems"
HELD_OUT = ("log_softmax", "residual_layernorm", "bias_gelu", "linear_bias_relu")   # never trained on
CLIP, EPOCHS, KL_COEF, LR = 0.2, 2, 0.01, 0.3


def key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def all_configs(template, device_type: str = "cuda") -> list[dict]:
    space = template.space(device_type)
    names = sorted(space)
    out = [{}]
    for n in names:
        out = [{**c, n: v} for c in out for v in space[n]]
    return [c for c in out if template.valid(c, device_type)]


def _unit(*parts) -> float:
    """A deterministic number in [0, 1) from its arguments (the same on every machine and run)."""
    return zlib.crc32(repr(parts).encode()) / 2 ** 32


def synthetic_table(names: list[str], seed: int = 0) -> dict:
    """The CPU stand-in: per problem, every valid configuration with a made-up verdict (see the docstring)."""
    table = {}
    for name in names:
        template = template_for(load_problem(PROBLEMS_DIR / f"{name}.py").family)
        rows = {}
        for params in all_configs(template):
            log_t = sum(1.2 * (_unit(seed, k, v) - 0.5) for k, v in params.items())   # shared effects
            log_t += 0.3 * (_unit(seed, name, key(params)) - 0.5)                     # this problem's own
            wrong = _unit(seed, "wrong", name, key(params)) < 0.05
            speedup = math.exp(-log_t)
            rows[key(params)] = {"params": params, "verdict": {"compiled": True, "correct": not wrong,
                                                                "speedup": None if wrong else speedup}}
        table[name] = rows
    return {"kind": "synthetic (a deterministic stand-in, not a measurement)", "seed": seed, "problems": table}


def measured_table(names: list[str], *, size: str = "small", max_configs: int = 10, seed: int = 0,
                   device: str = "cuda", log=print) -> dict:
    """A sample of each problem's configurations, compiled, checked and timed here (see the docstring). On the
    CPU (Triton's interpreter, tiny sizes) only the tests use it: interpreter times say nothing."""
    import importlib.util
    import os
    import tempfile

    from harness.device import provenance
    from harness.timing import TimingConfig, measure
    from harness.verify import compare, flatten, tolerance_for
    dev = torch.device(device)
    cfg = TimingConfig(max_time_s=0.5 if device == "cuda" else 0.05, min_samples=3 if device == "cpu" else 10)
    rng = random.Random(seed)
    table = {}
    tmp = tempfile.mkdtemp(prefix="ch20-grpo-")
    for name in names:
        problem = load_problem(PROBLEMS_DIR / f"{name}.py")
        template = template_for(problem.family)
        configs = all_configs(template, dev.type)
        picked = [dict(template.PLAIN)] + [c for c in rng.sample(configs, min(len(configs), max_configs))
                                            if c != template.PLAIN][: max_configs - 1]
        init = problem.init_inputs(size)
        with torch.device(dev):
            torch.manual_seed(1)
            ref_model = problem.module.Model(*init).to(problem.dtype(size))
        inputs = problem.make_inputs(size, 7, "normal", device=dev)
        with torch.no_grad():
            expected = flatten(ref_model(*inputs))
            ref_ms = measure(lambda m=ref_model, x=inputs: m(*x), dev, cfg).median_ms
        rows = {}
        for i, params in enumerate(picked):
            verdict = {"compiled": False, "correct": False, "speedup": None}
            try:
                path = os.path.join(tmp, f"{name}_{i}.py")
                Path(path).write_text(template.render(params, problem))
                spec = importlib.util.spec_from_file_location(f"ch20_grpo_{name}_{i}", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                with torch.device(dev):
                    torch.manual_seed(1)
                    model = module.ModelNew(*init).to(problem.dtype(size))
                with torch.no_grad():
                    got = flatten(model(*inputs))
                    verdict["compiled"] = True
                    ok = compare(got, expected, tolerance_for(expected[0].dtype)).ok
                    verdict["correct"] = ok
                    if ok:
                        ms = measure(lambda m=model, x=inputs: m(*x), dev, cfg).median_ms
                        verdict.update(speedup=ref_ms / ms, candidate_ms=ms, baseline_ms=ref_ms)
            except Exception as exc:   # a configuration that does not compile or crashes scores as such
                verdict["reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            rows[key(params)] = {"params": params, "verdict": verdict}
            log(f"  {name:<20} {template.label(params):<28} "
                + (f"{verdict['speedup']:.3g}x" if verdict.get("speedup") else verdict.get("reason", "wrong")))
        table[name] = rows
    where = torch.cuda.get_device_name() if dev.type == "cuda" else "the CPU (Triton interpreter)"
    return {"kind": f"measured on {where} at size {size}", "seed": seed,
            "provenance": provenance(dev), "problems": table}


class Policy:
    """softmax over a problem's configurations of the sum of their (knob, value) weights, shared across problems."""

    def __init__(self, table: dict):
        pairs = sorted({f"{k}={v}" for rows in table.values() for r in rows.values() for k, v in r["params"].items()})
        self.index = {p: i for i, p in enumerate(pairs)}
        self.theta = torch.zeros(len(pairs), requires_grad=True)
        self.features = {}   # problem -> (configs x pairs) 0/1 matrix, and the configuration keys in order
        for name, rows in table.items():
            keys = sorted(rows)
            f = torch.zeros(len(keys), len(pairs))
            for i, k in enumerate(keys):
                for kn, v in rows[k]["params"].items():
                    f[i, self.index[f"{kn}={v}"]] = 1.0
            self.features[name] = (f, keys)

    def log_probs(self, name: str, theta=None) -> torch.Tensor:
        f, _ = self.features[name]
        return torch.log_softmax(f @ (self.theta if theta is None else theta), dim=0)


def reward_of(table: dict, name: str, k: str) -> float:
    return reward_from_verdict(table[name][k]["verdict"])


def train(table: dict, train_names: list[str], *, steps: int = 40, group: int = 8, seed: int = 0) -> tuple[Policy, list]:
    policy = Policy(table)
    opt = torch.optim.Adam([policy.theta], lr=LR)
    gen = torch.Generator().manual_seed(seed)
    curve = []
    for step in range(steps):
        batch = []   # (problem, sampled indices, advantages, old log-probs)
        rewards_all = []
        with torch.no_grad():
            for name in train_names:
                lp = policy.log_probs(name)
                idx = torch.multinomial(lp.exp(), group, replacement=True, generator=gen)
                keys = policy.features[name][1]
                rewards = [reward_of(table, name, keys[i]) for i in idx.tolist()]
                rewards_all += rewards
                batch.append((name, idx, torch.tensor(group_advantages(rewards)), lp[idx].clone()))
        for _ in range(EPOCHS):
            loss = torch.zeros(())
            for name, idx, adv, old in batch:
                lp = policy.log_probs(name)
                ratio = torch.exp(lp[idx] - old)
                surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - CLIP, 1 + CLIP) * adv)
                kl = (lp.exp() * (lp + math.log(lp.numel()))).sum()   # KL(pi || uniform)
                loss = loss - surrogate.mean() + KL_COEF * kl
            opt.zero_grad()
            (loss / len(batch)).backward()
            opt.step()
        curve.append({"step": step, "mean_reward": sum(rewards_all) / len(rewards_all),
                      "max_reward": max(rewards_all)})
    return policy, curve


def best_of(table: dict, name: str, keys: list[str]) -> float:
    return max((reward_of(table, name, k) for k in keys), default=0.0)


def policy_search(policy: Policy, table: dict, name: str, budget: int, gen: torch.Generator) -> list[str]:
    """`budget` distinct configurations, drawn from the policy without replacement (Gumbel top-k)."""
    lp = policy.log_probs(name).detach()
    g = -torch.log(-torch.log(torch.rand(lp.shape, generator=gen).clamp_min(1e-12)))
    keys = policy.features[name][1]
    return [keys[i] for i in torch.topk(lp + g, min(budget, len(keys))).indices.tolist()]


def evolutionary_search(table: dict, name: str, budget: int, seed: int) -> list[str] | None:
    """The search generator (ch20.generators.search), its verdicts read from the table; None when the table
    holds only a sample of the space (it would propose configurations nobody measured)."""
    from ch20.generators.search import SearchGenerator
    problem = load_problem(PROBLEMS_DIR / f"{name}.py")
    gen = SearchGenerator(Context(problem=problem, device="cuda", size="full", dtype="bfloat16"), batch=2, seed=seed)
    history: list[Attempt] = []
    while len(history) < budget:
        props = gen.propose(history)
        if not props:
            break
        for p in props[: budget - len(history)]:
            row = table[name].get(key(p.params))
            if row is None:
                return None
            history.append(Attempt(len(history), Proposal("", p.label, p.params), row["verdict"],
                                   reward_from_verdict(row["verdict"])))
    return [key(a.proposal.params) for a in history]


def compare_at_budget(policy: Policy, table: dict, names: list[str], budget: int, repeats: int = 20,
                      seed: int = 0) -> dict:
    """Mean best reward over `repeats` searches of `budget` verified candidates per problem, per method."""
    gen = torch.Generator().manual_seed(seed + 1)
    rng = random.Random(seed + 2)
    out = {}
    for name in names:
        keys = policy.features[name][1]
        res = {"configs": len(keys), "best_possible": best_of(table, name, keys)}
        res["grpo_policy"] = sum(best_of(table, name, policy_search(policy, table, name, budget, gen))
                                 for _ in range(repeats)) / repeats
        res["random"] = sum(best_of(table, name, rng.sample(keys, min(budget, len(keys))))
                            for _ in range(repeats)) / repeats
        evo = [evolutionary_search(table, name, budget, seed=s) for s in range(repeats)]
        res["evolutionary"] = None if any(e is None for e in evo) else \
            sum(best_of(table, name, e) for e in evo) / repeats
        out[name] = res
    return out


def plot(curve: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([c["step"] for c in curve], [c["mean_reward"] for c in curve], label="mean reward of the sampled groups")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("staged reward (ch20.reward)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(reward: str = "synthetic", *, steps: int = 40, group: int = 8, budget: int = 6, seed: int = 0,
        table: dict | None = None, names: list[str] | None = None, size: str = "small", max_configs: int = 10,
        repeats: int = 20, log=print) -> dict:
    names = names or sorted(p.stem for p in PROBLEMS_DIR.glob("*.py"))
    if table is None:
        table = synthetic_table(names, seed) if reward == "synthetic" else \
            measured_table(names, size=size, max_configs=max_configs, seed=seed, log=log)
    names = [n for n in names if n in table["problems"]]
    train_names = [n for n in names if n not in HELD_OUT]
    held = [n for n in names if n in HELD_OUT]
    policy, curve = train(table["problems"], train_names, steps=steps, group=group, seed=seed)
    held_cmp = compare_at_budget(policy, table["problems"], held, budget, repeats, seed)
    train_cmp = compare_at_budget(policy, table["problems"], train_names, budget, repeats, seed)

    def mean(cmp, method):
        vals = [r[method] for r in cmp.values() if r[method] is not None]
        return sum(vals) / len(vals) if vals else None
    summary = {m: {"held_out": mean(held_cmp, m), "trained": mean(train_cmp, m)}
               for m in ("grpo_policy", "random", "evolutionary", "best_possible")}
    top = sorted(policy.index, key=lambda p: -float(policy.theta.detach()[policy.index[p]]))[:8]
    return {"reward": table["kind"], "steps": steps, "group": group, "budget": budget, "seed": seed,
            "train_problems": train_names, "held_out_problems": held, "curve": curve,
            "held_out": held_cmp, "trained": train_cmp, "summary_mean_best_reward": summary,
            "policy_top_pairs": top, "table": table if reward == "measured" else None,
            "hyperparameters": {"clip": CLIP, "epochs": EPOCHS, "kl_to_uniform": KL_COEF, "adam_lr": LR}}


def main(argv: list[str] | None = None) -> int:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"ch20.grpo_policy: {message}", file=sys.stderr)
            sys.exit(2)

    p = Parser(prog="python -m ch20.grpo_policy", description=__doc__.splitlines()[0])
    p.add_argument("--reward", choices=["synthetic", "measured"], default="synthetic")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--budget", type=int, default=6, help="verified candidates per problem in the comparison")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--problems", help="comma-separated names (default: all)")
    p.add_argument("--size", choices=["tiny", "small", "full"], default="small", help="measured: problem size")
    p.add_argument("--max-configs", type=int, default=10, help="measured: configurations timed per problem")
    p.add_argument("--table", type=Path, help="read the reward table from this JSON (a measured run's output)")
    p.add_argument("--json", type=Path)
    p.add_argument("--png", type=Path)
    args = p.parse_args(argv)
    if min(args.steps, args.group, args.budget, args.max_configs) < 1:
        p.error("--steps, --group, --budget and --max-configs must be at least 1")
    known = sorted(f.stem for f in PROBLEMS_DIR.glob("*.py"))
    names = [n for n in (args.problems or "").split(",") if n] or known
    if set(names) - set(known):
        p.error(f"unknown problem(s): {', '.join(sorted(set(names) - set(known)))}")
    if args.reward == "measured" and args.table is None and not torch.cuda.is_available():
        p.error("--reward measured needs a CUDA GPU (or --table from a measured run)")
    table = None
    if args.table:
        if not args.table.is_file():
            p.error(f"no table file {args.table}")
        loaded = json.loads(args.table.read_text())
        table = loaded.get("table") or loaded
    result = run(args.reward, steps=args.steps, group=args.group, budget=args.budget, seed=args.seed, table=table,
                 names=names, size=args.size, max_configs=args.max_configs)
    if args.reward == "measured" or args.table:
        result["table"] = table or result["table"]
    from harness.device import provenance
    result["provenance"] = provenance(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    c = result["curve"]
    print(f"reward: {result['reward']}\nmean reward of the groups: step 0 {c[0]['mean_reward']:.3f} -> "
          f"step {c[-1]['step']} {c[-1]['mean_reward']:.3f}")
    print(f"mean best reward at a budget of {args.budget} verified candidates per problem:")
    for m, v in result["summary_mean_best_reward"].items():
        print(f"  {m:<14} held-out {v['held_out'] if v['held_out'] is None else round(v['held_out'], 3)!s:>6}   "
              f"trained-on {v['trained'] if v['trained'] is None else round(v['trained'], 3)!s:>6}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if args.png:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        plot(c, args.png, f"GRPO on {result['reward']}"[:90])
    return 0


if __name__ == "__main__":
    sys.exit(main())
