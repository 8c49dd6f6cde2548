"""How many prefill and how many decode workers a traffic mix needs to meet its SLO, from measured per-worker
capacity (the fitted step model of `ch17.step_model`).

    python -m ch17.capacity_plan --step-model step_model.json --slo-ttft 1 --slo-tpot 0.05
    python -m ch17.capacity_plan --size tiny --device cpu --rate 40 --prompt 64 --output 32

Prefill pool. A request costs s = prefill_time(prompt x (1 - prefix hit)) seconds of one prefill worker (chunks of
the token budget back to back). Requests spread at random over n workers: each is an M/D/1 queue at utilisation
rho = rate x s / n. The TTFT percentile is s + the waiting time's percentile, taken from the M/M/1 tail
P(wait > x) = rho exp(-(1 - rho) x / s), an upper bound for deterministic service (a least-loaded router does
better: the plan is conservative). n is the smallest count whose TTFT percentile meets the SLO.

Decode pool. A step at batch B over contexts of mean length c lasts t(B) = fixed + (per_token + per_row) B +
per_kv B c; every
sequence in it gets one token, so TPOT = t(B). The largest batch a worker may run is the largest B with t(B) <=
the TPOT SLO (also within max_batch and the KV pool: kv_tokens / (prompt + output)); a worker then produces
B / t(B) tokens/s, and the pool needs rate x output / that many workers (rounded up).

Colocated, for comparison: one pool where every worker does both; each request costs its prefill tokens at the
marginal per-token rate plus output x t(B) / B of decode time. Disaggregation's gain is that the decode pool runs
at the batch the TPOT SLO allows without prefill chunks in its steps, and each pool is sized for its own SLO.

Bound: the plan is only as good as the step model; the KV transfer between pools (Chapter 15) is not in it.
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ch17.step_model import StepModel


@dataclass(frozen=True)
class Traffic:
    name: str
    rate: float          # requests/s
    prompt: int          # mean prompt tokens
    output: int          # mean output tokens
    prefix_hit: float = 0.0  # fraction of prompt tokens served from a prefix cache


# Mixes of the shape serving traces show (chat: short in, medium out; RAG: long in, short out; code/agents:
# long in, long out), all at one rate so the table compares their shapes.
MIXES = [Traffic("chat", 100.0, 512, 256, 0.3), Traffic("rag", 100.0, 4096, 256, 0.5),
         Traffic("code", 100.0, 2048, 1024, 0.5), Traffic("summarize", 100.0, 8192, 128, 0.0)]


def ttft_percentile(service_s: float, rho: float, q: float = 0.99) -> float:
    """s + the q-quantile of the M/M/1 waiting time at utilisation rho (inf at rho >= 1)."""
    if rho >= 1:
        return math.inf
    tail = 1 - q
    wait = 0.0 if rho <= tail else service_s / (1 - rho) * math.log(rho / tail)
    return service_s + wait


def prefill_workers(sm: StepModel, t: Traffic, slo_ttft: float, q: float = 0.99, limit: int = 100000) -> dict:
    s = sm.prefill_time(max(1, round(t.prompt * (1 - t.prefix_hit))))
    if s > slo_ttft:
        return {"workers": None, "service_s": s, "why": f"one prefill alone takes {s:.3g} s > the TTFT SLO"}
    n = max(1, math.ceil(t.rate * s))  # at least enough to keep rho below 1
    while ttft_percentile(s, t.rate * s / n, q) > slo_ttft and n < limit:
        n += 1
    rho = t.rate * s / n
    return {"workers": n, "service_s": s, "utilization": rho, "ttft_percentile_s": ttft_percentile(s, rho, q)}


def decode_batch(sm: StepModel, context: float, slo_tpot: float, max_batch: int, kv_tokens: int,
                 per_request_tokens: int) -> int:
    """The largest batch whose step time meets the TPOT SLO and whose KV fits (0: not even one sequence)."""
    cap = min(max_batch, kv_tokens // max(1, per_request_tokens))
    b = 0
    while b < cap and sm.decode_step_time(b + 1, context) <= slo_tpot:
        b += 1
    return b


def decode_workers(sm: StepModel, t: Traffic, slo_tpot: float, max_batch: int, kv_tokens: int) -> dict:
    context = t.prompt + t.output / 2  # mean length over a sequence's decode
    b = decode_batch(sm, context, slo_tpot, max_batch, kv_tokens, t.prompt + t.output)
    if b == 0:
        return {"workers": None, "batch": 0, "why": "no batch meets the TPOT SLO within the KV pool"}
    step = sm.decode_step_time(b, context)
    per_worker = b / step
    n = max(1, math.ceil(t.rate * t.output / per_worker - 1e-9))
    return {"workers": n, "batch": b, "step_s": step, "tokens_per_s_per_worker": per_worker,
            "utilization": t.rate * t.output / (n * per_worker)}


def colocated_workers(sm: StepModel, t: Traffic, slo_tpot: float, max_batch: int, kv_tokens: int) -> dict:
    d = decode_workers(sm, t, slo_tpot, max_batch, kv_tokens)
    if d["workers"] is None:
        return {"workers": None}
    per_request = t.prompt * (1 - t.prefix_hit) * sm.per_token_s + t.output * d["step_s"] / d["batch"]
    return {"workers": max(1, math.ceil(t.rate * per_request - 1e-9)), "seconds_per_request": per_request}


def plan(sm: StepModel, t: Traffic, slo_ttft: float, slo_tpot: float, max_batch: int, kv_tokens: int,
         q: float = 0.99) -> dict:
    return {"traffic": asdict(t), "prefill": prefill_workers(sm, t, slo_ttft, q),
            "decode": decode_workers(sm, t, slo_tpot, max_batch, kv_tokens),
            "colocated": colocated_workers(sm, t, slo_tpot, max_batch, kv_tokens)}


def table(plans: list[dict]) -> str:
    def f(x, fmt):
        return "-" if x is None else format(x, fmt)
    head = ("| mix | req/s | prompt | output | prefix hit | prefill s/req | prefill workers (util) | decode batch | "
            "decode step ms | decode workers (util) | colocated workers (throughput only) |\n"
            + "|---" * 11 + "|")
    rows = []
    for p in plans:
        t, pf, d, c = p["traffic"], p["prefill"], p["decode"], p["colocated"]
        rows.append(f"| {t['name']} | {t['rate']:g} | {t['prompt']} | {t['output']} | {t['prefix_hit']:.0%} | "
                    f"{f(pf['service_s'], '.4f')} | {f(pf['workers'], 'd')} ({f(pf.get('utilization'), '.0%')}) | "
                    f"{d['batch']} | {f(d.get('step_s') and d['step_s'] * 1e3, '.2f')} | {f(d['workers'], 'd')} "
                    f"({f(d.get('utilization'), '.0%')}) | {f(c['workers'], 'd')} |")
    return "\n".join([head, *rows])


def main(argv=None) -> int:
    from ch17 import common
    ap = common.parser(__doc__)
    ap.add_argument("--step-model", type=Path, help="a JSON written by ch17.step_model (else measured now)")
    ap.add_argument("--rate", type=float, help="one mix instead of the presets: requests/s")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--output", type=int, default=256)
    ap.add_argument("--prefix-hit", type=float, default=0.0)
    ap.add_argument("--slo-ttft", type=float, default=1.0)
    ap.add_argument("--slo-tpot", type=float, default=0.05)
    ap.add_argument("--percentile", type=float, default=99.0)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--kv-tokens", type=int, default=1 << 20,
                    help="KV pool of one decode worker, in tokens (2^20: 32 GiB at 1B in bf16)")
    args = ap.parse_args(argv)
    bad = [n for n, v in (("--rate", args.rate if args.rate is not None else 1), ("--prompt", args.prompt),
                          ("--output", args.output), ("--slo-ttft", args.slo_ttft), ("--slo-tpot", args.slo_tpot),
                          ("--max-batch", args.max_batch), ("--kv-tokens", args.kv_tokens)) if not v > 0]
    if bad or not 0 <= args.prefix_hit < 1 or not 0 < args.percentile < 100:
        print(f"capacity_plan: {', '.join(bad) or '--prefix-hit / --percentile'} out of range", file=sys.stderr)
        return 2
    model = None
    try:
        if not args.step_model:
            model = common.load_model(args, "capacity_plan")
            if model is None:
                return 2
        sm = common.get_step_model(args, model)
    except ValueError as e:
        print(f"capacity_plan: {e}", file=sys.stderr)
        return 2
    mixes = [Traffic("given", args.rate, args.prompt, args.output, args.prefix_hit)] if args.rate else MIXES
    plans = [plan(sm, t, args.slo_ttft, args.slo_tpot, args.max_batch, args.kv_tokens, args.percentile / 100)
             for t in mixes]
    print(f"step model: {sm.describe()}; SLO TTFT p{args.percentile:g} <= {args.slo_ttft} s, "
          f"TPOT <= {args.slo_tpot} s")
    print(table(plans))
    common.write(args, "capacity_plan", model, step_model=sm.as_dict(), plans=plans,
                 slo={"ttft_s": args.slo_ttft, "tpot_s": args.slo_tpot, "percentile": args.percentile},
                 step_model_source=str(args.step_model) if args.step_model else "measured in this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
