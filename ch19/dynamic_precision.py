"""Dynamic precision: decode in bf16 when the server is lightly loaded, in FP8 when it is busy, and measure what
the switch costs in quality (top-1 agreement with bf16) and gains in speed.

    python -m ch19.dynamic_precision --size tiny|small|full [--json OUT]

Every linear layer of the blocks keeps its bf16 weight and an FP8 copy (e4m3, one scale per output row, made
once: +50% weight memory for the right to switch at any step). In FP8 mode the layer quantizes its input per
row (dynamic scaling, Chapter 13's `quantize`) and multiplies on FP8 tensor cores (`torch._scaled_mm`, row-wise
scales; sm_89+), else it is the bf16 `F.linear`. The switch is one flag read every forward: no recompile, no
copy. The policy: FP8 while at least `threshold` requests are in the system (running + waiting), bf16 otherwise
(the threshold is the engine's batch limit over 2 unless given): under load the step's weight reads are shared
by many sequences and the queue grows, so a cheaper step pays; when idle, quality is free.

On a CPU the high-precision mode is the fp32 the CPU model runs in (named bf16 in the output).

Quality: the same token sequences scored teacher-forced in both modes: the fraction of positions whose argmax
agrees (top-1 agreement) and the mean |p_bf16 - p_fp8| of the bf16 top token. Random weights make the absolute
text meaningless, but the agreement measures the numeric perturbation FP8 adds to real-sized GEMMs. Speed:
the engine served at a light and a heavy arrival rate under three policies (always bf16, always FP8, by load),
with output tokens/s, TPOT and the fraction of tokens decoded in FP8. Without FP8 tensor cores (a CPU, a GPU
before sm_89) the FP8 path is emulated (dequantize, then fp32 GEMM): the quality figures hold, the speed does not.

Bound: a decode step reads every weight once: 2 bytes/param in bf16, 1 in FP8, so a weight-read-bound step can
at best halve (1B: 2.5 -> 1.2 GB, ~0.5 -> 0.25 ms at 4.8 TB/s); the per-row activation quantization adds two
element-wise passes per linear, and the Python step (~ms) does not shrink at all.
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

from ch13.fp8_linear import E4M3, FP8_ON_CUDA, dequantize, quantize
from ch16 import serving
from ch19.engine_loop import serve_with
from inference.bench import make_engine
from inference.loadgen import poisson_requests
from inference.metrics import summarize


class PrecisionState:
    """One flag every SwitchableLinear of a model reads: 'bf16' or 'fp8'."""

    def __init__(self):
        self.mode = "bf16"


class SwitchableLinear(nn.Linear):
    """nn.Linear (no bias) with an FP8 copy of its weight; `state.mode` picks the path each forward."""

    state: PrecisionState
    w_fp8: torch.Tensor
    w_scale: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.state.mode == "bf16":
            return F.linear(x, self.weight)
        x2 = x.reshape(-1, x.shape[-1])
        qx, sx = quantize(x2, E4M3, dim=1)                         # (M, K) fp8, (M, 1) scales
        if x.is_cuda and FP8_ON_CUDA:
            y = torch._scaled_mm(qx, self.w_fp8.t(), scale_a=sx, scale_b=self.w_scale, out_dtype=x.dtype)
        else:  # emulated: the same quantized values, multiplied in fp32
            y = (dequantize(qx, sx) @ dequantize(self.w_fp8, self.w_scale.t()).t()).to(x.dtype)
        return y.reshape(*x.shape[:-1], y.shape[-1])


def make_switchable(model: nn.Module, skip: tuple[str, ...] = ("output",)) -> PrecisionState:
    """Give every bias-free linear (dims multiples of 16) an FP8 copy, in place; the LM head stays bf16."""
    state = PrecisionState()
    for name, m in model.named_modules():
        if type(m) is nn.Linear and m.bias is None and name not in skip and m.in_features % 16 == 0 \
                and m.out_features % 16 == 0:
            q, s = quantize(m.weight.detach(), E4M3, dim=1)         # per output row, along K
            m.__class__ = SwitchableLinear
            m.register_buffer("w_fp8", q.contiguous(), persistent=False)
            m.register_buffer("w_scale", s.reshape(1, -1).contiguous(), persistent=False)  # (1, N)
            m.state = state
    return state


@torch.no_grad()
def agreement(model, state: PrecisionState, tokens: torch.Tensor) -> dict:
    """Teacher-forced top-1 agreement of FP8 with bf16 over every position of `tokens` (batch, seq)."""
    old = state.mode
    state.mode = "bf16"
    ref = model(tokens).float()
    state.mode = "fp8"
    low = model(tokens).float()
    state.mode = old
    top = ref.argmax(-1)
    p_ref = ref.softmax(-1).gather(-1, top[..., None])
    p_low = low.softmax(-1).gather(-1, top[..., None])
    return {"positions": top.numel(), "top1_agreement": float((low.argmax(-1) == top).float().mean()),
            "mean_abs_prob_diff_top1": float((p_ref - p_low).abs().mean())}


class LoadPolicy:
    """FP8 while at least `threshold` requests are in the system; counts the tokens each mode decoded."""

    def __init__(self, state: PrecisionState, threshold: int | None):
        self.state, self.threshold = state, threshold  # None: never switch (the mode stays as set)
        self.tokens = {"bf16": 0, "fp8": 0}

    def before(self, engine) -> None:
        if self.threshold is not None:
            load = len(engine.running) + len(engine.waiting)
            self.state.mode = "fp8" if load >= self.threshold else "bf16"
        self.tokens[self.state.mode] += len(engine.running)  # ~ this step's decoded tokens (one per running request)


RATES = {"tiny": [100.0, float("inf")], "small": [10.0, float("inf")], "full": [8.0, float("inf")]}
REQUESTS = {"tiny": 16, "small": 24, "full": 24}  # per point: 3 policies x 2 rates


def main(argv=None) -> int:
    ap = serving.parser(__doc__)
    ap.add_argument("--threshold", type=int, help="requests in the system at which decode switches to FP8")
    args = ap.parse_args(argv)
    model = serving.load_model(args, "dynamic_precision")
    if model is None:
        return 2
    s = serving.SIZES[args.size]
    threshold = args.threshold or max(1, s["max_batch"] // 2)
    state = make_switchable(model)
    g = torch.Generator(device=args.device).manual_seed(1)
    probe = torch.randint(0, model.cfg.vocab, (4, min(256, model.cfg.max_seq)), device=args.device, generator=g)
    quality = agreement(model, state, probe)
    print(f"FP8 vs bf16, teacher-forced on {quality['positions']} positions: top-1 agreement "
          f"{quality['top1_agreement']:.4f}, mean |dp| of the top token {quality['mean_abs_prob_diff_top1']:.4f}")
    policies = {"bf16": ("bf16", None), "fp8": ("fp8", None), "by_load": ("bf16", threshold)}
    series = {}
    for name, (mode, thr) in policies.items():
        points = []
        for rate in RATES[args.size]:
            w = serving.workload(args.size, rate=rate, n_requests=REQUESTS[args.size])
            state.mode = mode
            policy = LoadPolicy(state, thr)
            engine = make_engine(model, {"continuous", "paged"}, s["kv_tokens"], s["page_size"],
                                 min(model.cfg.max_seq, w.max_prompt + w.max_output), s["max_batch"], s["token_budget"])
            reqs = poisson_requests(w, model.cfg.vocab)
            makespan = serve_with(engine, reqs, before=policy.before, deadline_s=args.deadline)
            p = {"rate": w.as_dict()["rate"], **summarize(reqs, makespan, serving.SLO["ttft_s"], serving.SLO["tpot_s"])}
            total = sum(policy.tokens.values())
            p["fp8_token_fraction"] = policy.tokens["fp8"] / total if total else 0.0
            p["expected_top1_agreement"] = 1 - p["fp8_token_fraction"] * (1 - quality["top1_agreement"])
            points.append(p)
            print(f"{name:>8} rate {w.rate:>5}/s: {p['output_tokens_per_s'] or 0:8.1f} out tok/s, TPOT p50 "
                  f"{serving._ms(p['tpot_s']['p50'])}, FP8 share {p['fp8_token_fraction']:.2f}, expected agreement "
                  f"{p['expected_top1_agreement']:.4f}", flush=True)
        series[name] = points
    state.mode = "bf16"
    heavy = -1
    goals = [serving.goal("FP8 / bf16 output tokens/s, all requests at t=0",
                          serving.ratio(series["fp8"][heavy]["output_tokens_per_s"],
                                        series["bf16"][heavy]["output_tokens_per_s"]), ">=", 1.2,
                          "project claim: a decode step reads half the weight bytes in FP8"),
             serving.goal("FP8 top-1 agreement with bf16 (teacher-forced)", quality["top1_agreement"], ">=", 0.95,
                          "project claim: row-wise e4m3 keeps the argmax at >= 95% of positions")]
    serving.write(args, "dynamic_precision", model, series, goals, quality=quality, threshold=threshold,
                  fp8_hardware=bool(FP8_ON_CUDA and args.device.startswith("cuda")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
