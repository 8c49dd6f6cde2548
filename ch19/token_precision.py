"""Token-level precision switching: decode in FP8, and recompute in bf16 only the steps where FP8 is unsure.

    python -m ch19.token_precision --size tiny|small|full [--json OUT]

The policy, stated: each decode step runs in FP8 (`dynamic_precision.SwitchableLinear`); a sequence whose FP8
logits have a top-1 / top-2 gap below `tau` (in logits) is a low-confidence token, and if a step has one, the
step is run again in bf16 (it rewrites that position's keys and values) and the low-confidence sequences take
the bf16 token. Confident tokens, where FP8's rounding cannot flip the argmax, keep the cheap path.

Measured on a batch of prompts, teacher-forced along the bf16 greedy output (every run is fed the same tokens,
so the positions line up and a flip does not cascade): per `tau`, the share of tokens escalated, the share of
steps re-run, top-1 agreement with all-bf16 decoding, and the time per step against all-FP8 and all-bf16.
With random weights the logit gaps have no meaning of their own, so the thresholds are quantiles of the gaps
FP8 decoding produced (0% .. 100% escalated), and the curve is agreement against the share kept in FP8.

Bound: a re-run step costs a bf16 step on top of the FP8 one; with a fraction e of steps re-run the step time is
t_fp8 + e t_bf16, below t_bf16 only while e < 1 - t_fp8 / t_bf16 (at best 0.5 on a weight-read-bound decode).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ch19.dynamic_precision import make_switchable
from inference.bench import build_model

SIZES = {"tiny": ("tiny", 4, 16, 12), "small": ("small", 8, 128, 48), "full": ("1b", 16, 256, 96)}  # config, batch, prompt, new
QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gap(logits: torch.Tensor) -> torch.Tensor:
    top2 = logits.float().topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


@torch.no_grad()
def decode(model, state, prompts: torch.Tensor, forced: torch.Tensor | None, n_new: int, tau: float | None,
           mode: str = "fp8") -> dict:
    """Greedy decode of `n_new` tokens (fed `forced` when given). tau None: every step in `mode`."""
    b, p = prompts.shape
    cache = model.new_cache(batch=b, max_seq=p + n_new)
    state.mode = "bf16"  # the prompt in bf16: the policy is about decode tokens
    logits = model(prompts, cache=cache, start_pos=0)[:, -1]
    out, gaps, escalated, reruns = [], [], 0, 0
    _sync(prompts.device)
    t0 = time.perf_counter()
    for i in range(n_new):
        tok = logits.argmax(-1)
        out.append(tok)
        nxt = (forced[:, i] if forced is not None else tok)[:, None]
        state.mode = mode if tau is None else "fp8"
        logits = model(nxt, cache=cache, start_pos=p + i)[:, -1]
        if tau is not None:
            g = gap(logits)
            gaps.append(g)
            low = g < tau
            if bool(low.any()):  # one host read per step: the policy decides on the host
                state.mode = "bf16"
                hi = model(nxt, cache=cache, start_pos=p + i)[:, -1]
                logits = torch.where(low[:, None], hi, logits)
                escalated += int(low.sum())
                reruns += 1
    _sync(prompts.device)
    seconds = time.perf_counter() - t0
    state.mode = "bf16"
    return {"tokens": torch.stack(out, 1), "seconds": seconds, "escalated": escalated, "reruns": reruns,
            "gaps": torch.cat(gaps) if gaps else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="full", choices=list(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("token_precision: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    config, b, p, n = SIZES[args.size]
    model = build_model(config, args.device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    state = make_switchable(model)
    g = torch.Generator(device=device).manual_seed(0)
    prompts = torch.randint(0, model.cfg.vocab, (b, p), device=device, generator=g)
    decode(model, state, prompts, None, 2, None, "bf16")  # warm-up
    ref = decode(model, state, prompts, None, n, None, "bf16")
    forced = ref["tokens"]
    bf16 = decode(model, state, prompts, forced, n, None, "bf16")
    fp8 = decode(model, state, prompts, forced, n, None, "fp8")
    probe = decode(model, state, prompts, forced, n, float("-inf"))  # never escalates: the FP8 gaps
    gaps = probe["gaps"].float().cpu()
    rows = []
    for q in QUANTILES:
        tau = float(gaps.quantile(q)) if q < 1 else float("inf")
        r = decode(model, state, prompts, forced, n, tau)
        agree = float((r["tokens"][:, 1:] == forced[:, 1:]).float().mean())  # token 0 comes from the prefill
        row = {"quantile": q, "tau": tau if q < 1 else "inf", "escalated_tokens": r["escalated"] / (b * n),
               "rerun_steps": r["reruns"] / n, "top1_agreement": agree, "ms_per_step": 1e3 * r["seconds"] / n}
        rows.append(row)
        print(f"tau at q={q:4.2f}: escalated {row['escalated_tokens']:.2f} of tokens, re-ran {row['rerun_steps']:.2f} "
              f"of steps, agreement {agree:.4f}, {row['ms_per_step']:.2f} ms/step", flush=True)
    fp8_agree = float((fp8["tokens"][:, 1:] == forced[:, 1:]).float().mean())
    print(f"all bf16 {1e3 * bf16['seconds'] / n:.2f} ms/step; all FP8 {1e3 * fp8['seconds'] / n:.2f} ms/step, "
          f"agreement {fp8_agree:.4f}")
    if args.json:
        from harness.device import provenance
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "name": "token_precision", "provenance": provenance(device, size=args.size), "config": config,
            "batch": b, "prompt": p, "new_tokens": n, "policy": "re-run the step in bf16 if any FP8 top-1/top-2 "
            "logit gap < tau; low-gap sequences take the bf16 token", "bf16_ms_per_step": 1e3 * bf16["seconds"] / n,
            "fp8_ms_per_step": 1e3 * fp8["seconds"] / n, "fp8_top1_agreement": fp8_agree, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
