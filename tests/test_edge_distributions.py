"""Edge-case input distributions catch what standard-normal inputs let through.

Each case plants a wrong but plausible variant in a real example (softmax without the max subtraction,
LayerNorm or AdamW without eps, ...) and runs the harness's own verification (the
answers and trials `run_example` uses) on the example's setup at tiny size on the CPU, with two
distributions: the example's first (timing) one, then one edge case. The planted variant must pass the first
trial and fail the second, by name. Where a CUDA-only example's baseline cannot run here, its PyTorch
reference stands in as the baseline. Honest controls run through every declared distribution and must pass,
so no distribution asks more than the baseline's own math can give.

And a rule, so a new example cannot skip the question: a file whose source mentions softmax, a norm, exp, log,
sqrt, GELU, tanh, FP8, a histogram/bincount or top-k declares `distributions=` or carries a comment
`# no edge distributions: <why>`.
"""
from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
import torch.nn.functional as F

from harness.device import REPO_ROOT
from harness.example import Example, Requires, is_example_file
from harness.runner import _Answers, _verify

CPU = torch.device("cpu")


def verify_on(ex: Example, dists: tuple[str, ...], seed: int = 11, baseline=None, **variants):
    """The harness's verification of `variants` against the baseline, one trial per distribution, in order."""
    ex = dataclasses.replace(ex, baseline=baseline or ex.baseline, optimized=variants, references={},
                             requires=Requires(), distributions=dists)
    specs = ex.variants()
    answers = _Answers(ex, specs[0], "tiny", CPU, seed, trials=len(dists))
    return _verify(ex, specs, answers, CPU)


def assert_caught_only_by(ex: Example, edge: str, planted, baseline=None):
    first = ex.distributions[0]
    verdict = verify_on(ex, (first, edge), baseline=baseline, planted=planted)["planted"]
    assert not verdict.ok, f"a planted bug passed the {edge} inputs"
    assert verdict.reason.startswith(f"trial 1 ({edge} inputs)"), verdict.reason   # trial 0 ({first}) passed


def assert_honest_everywhere(ex: Example, baseline=None, **variants):
    verdicts = verify_on(ex, ex.distributions, baseline=baseline, **variants)
    for name in variants:
        assert verdicts[name].ok, (name, verdicts[name].reason)


# ---- ch14: softmax without the max subtraction; LayerNorm without eps ----

def softmax_without_max(inputs):
    e = torch.exp(inputs["x"])
    return e / e.sum(-1, keepdim=True)


@pytest.mark.parametrize("edge", ["large", "shifted"])
def test_softmax_without_max_subtraction_fails_on_large_inputs(edge):
    from ch14.fused_softmax import EXAMPLE
    assert_caught_only_by(EXAMPLE, edge, softmax_without_max)


def test_layernorm_without_eps_fails_on_constant_rows():
    from ch14.layernorm import EXAMPLE

    def no_eps(inputs):
        x = inputs["x"].float()
        centred = x - x.mean(-1, keepdim=True)
        y = centred * torch.rsqrt((centred * centred).mean(-1, keepdim=True))
        return (y * inputs["w"].float() + inputs["b"].float()).to(inputs["x"].dtype)

    assert_caught_only_by(EXAMPLE, "constant_rows", no_eps)


# ---- ch9: L2 norm in half precision; GELU's tanh written with exp ----

def test_l2norm_in_fp16_arithmetic_fails_on_large_rows():
    from ch9.fused_l2norm import EXAMPLE, eager

    def half2_kernel(inputs):  # squares and their sum in fp16, as a half2 kernel keeps them: 256^2 overflows
        x = inputs["x"]
        squares = x.half() * x.half()
        norm = squares.sum(-1, keepdim=True, dtype=torch.half).float().sqrt()
        return (x.float() / norm).to(x.dtype)

    assert_caught_only_by(EXAMPLE, "large", half2_kernel, baseline=eager)


def gelu_residual_fp32(tanh_from_exp: bool):
    def fn(inputs):
        h = inputs["x"].float() + inputs["bias"].float()
        if tanh_from_exp:  # the tanh approximation, tanh(u) = (e^2u - 1) / (e^2u + 1): inf / inf once u > 44
            u = math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)
            e = torch.exp(2 * u)
            g = 0.5 * h * (1 + (e - 1) / (e + 1))
        else:
            g = F.gelu(h)
        return (g + inputs["residual"].float()).to(inputs["x"].dtype)   # rounded once, as the fused kernel
    return fn


def test_gelu_with_tanh_from_exp_fails_when_saturated():
    from ch9.fused_bias_gelu_residual import EXAMPLE, eager
    assert_caught_only_by(EXAMPLE, "saturated", gelu_residual_fp32(tanh_from_exp=True), baseline=eager)
    assert_honest_everywhere(EXAMPLE, baseline=eager, fp32_once_rounded=gelu_residual_fp32(tanh_from_exp=False))


# ---- ch8: a predicated select written >= instead of > ----

def test_predicate_on_the_wrong_side_of_the_threshold_fails_on_ties():
    from ch8.loop_unrolling import horner
    from ch8.warp_divergence import EXAMPLE, torch_where

    def at_or_above(x):
        t, scale_lo, gain_lo, scale_hi, gain_hi = x["sides"]
        v = x["x"].float()
        hi = v >= t
        scale, gain = torch.where(hi, scale_hi, scale_lo), torch.where(hi, gain_hi, gain_lo)
        return (gain * horner(scale * (v - t), x["coeffs_list"])).to(torch.bfloat16)

    assert_caught_only_by(EXAMPLE, "at_threshold", at_or_above, baseline=torch_where)


# ---- ch6: SiLU as x e^x / (1 + e^x) ----

def test_silu_from_exp_of_x_fails_on_large_inputs():
    from ch6.occupancy_block_size import EXAMPLE

    def silu_exp(x):
        e = torch.exp(x["x"])
        return x["x"] * e / (1 + e)

    assert_caught_only_by(EXAMPLE, "large", silu_exp, baseline=lambda x: F.silu(x["x"]))


# ---- ch10: a histogram with 8-bit counters ----

def test_histogram_with_narrow_counters_fails_on_one_hot_bin():
    from ch10.cluster_histogram import BINS, EXAMPLE

    def byte_counters(x):  # per-block counters of one byte (twice the bins in shared memory), wrapping past 255
        return torch.bincount(x["x"], minlength=BINS).to(torch.uint8).to(torch.int32)

    bincount = lambda x: torch.bincount(x["x"], minlength=BINS).to(torch.int32)  # noqa: E731
    assert_caught_only_by(EXAMPLE, "hot_bin", byte_counters, baseline=bincount)
    verdict = verify_on(EXAMPLE, ("concentrated",), baseline=bincount, planted=byte_counters)["planted"]
    assert verdict.ok, "at tiny size no bin of the `concentrated` inputs reaches 256: only `hot_bin` finds this"


# ---- ch13: AdamW without eps ----

def adamw_by_hand(with_eps: bool):
    """torch's AdamW as the example calls it (step 10 -> 11, betas 0.9/0.95, lr 1e-3, wd 0.1, eps 1e-8)."""
    lr, wd, beta1, beta2, eps, step = 1e-3, 0.1, 0.9, 0.95, 1e-8, 11

    def fn(inputs):
        for p, g, m, v in zip(inputs["params"], inputs["grads"], inputs["exp_avgs"], inputs["exp_avg_sqs"], strict=True):
            p.mul_(1 - lr * wd)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            v_hat = v / (1 - beta2 ** step)
            denom = v_hat.sqrt() + eps if with_eps else v_hat.sqrt()   # without: m_hat * rsqrt(v_hat)
            p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** step))
        return inputs["params"]
    return fn


def test_adamw_without_eps_fails_on_tiny_gradients():
    from ch13.adamw_step import EXAMPLE
    assert_caught_only_by(EXAMPLE, "tiny_grads", adamw_by_hand(with_eps=False))
    assert_honest_everywhere(EXAMPLE, by_hand=adamw_by_hand(with_eps=True),
                             foreach=EXAMPLE.optimized["foreach"], fused=EXAMPLE.optimized["fused"])


# ---- ch16: MoE blocks sized by a capacity factor; FP8 activations cast without a scale ----

def test_moe_with_a_capacity_factor_drops_tokens_when_one_expert_takes_all():
    from ch16 import moe_layer as moe

    def capacity_factor_3(inp):  # padded_bmm with blocks of 3 x the mean load: rows past it are dropped
        x, k, w1, w2, w3 = inp["x"], inp["top_k"], inp["w1"], inp["w2"], inp["w3"]
        n_experts = w1.shape[0]
        weights, experts = moe.route(x, inp["router"], k)
        flat, order, counts = moe.sort_by_expert(experts, n_experts)
        capacity = 3 * x.shape[0] * k // n_experts
        expert_of = flat[order]
        rank = torch.arange(order.numel()) - (torch.cumsum(counts, 0) - counts)[expert_of]
        kept = rank < capacity
        xp = x.new_zeros(n_experts, capacity, x.shape[1])
        xp[expert_of[kept], rank[kept]] = x[order[kept] // k]
        yp = torch.bmm(F.silu(torch.bmm(xp, w1.transpose(1, 2))) * torch.bmm(xp, w3.transpose(1, 2)), w2.transpose(1, 2))
        y = x.new_zeros(order.numel(), x.shape[1])
        y[order[kept]] = yp[expert_of[kept], rank[kept]]
        return moe.combine(y, weights)

    assert_caught_only_by(moe.EXAMPLE, "one_expert", capacity_factor_3)
    assert_honest_everywhere(moe.EXAMPLE, padded_bmm=moe.padded_bmm)


@pytest.mark.parametrize("edge", ["large", "tiny"])
def test_fp8_activations_cast_without_a_scale_fail_off_unit_scale(edge):
    from ch16 import fp8_linear

    def unscaled(inp):  # the activations cast straight to e4m3 (a scale of 1), weights as the rowwise variant's
        x8, one = inp["x"].float().to(fp8_linear.E4M3), torch.ones(inp["x"].shape[0], 1)
        return torch._scaled_mm(x8, inp["w8_rows"].t(), scale_a=one, scale_b=inp["scale_rows"], out_dtype=inp["x"].dtype)

    if not _scaled_mm_runs():
        pytest.skip("torch._scaled_mm with e4m3, tensorwise and rowwise, does not run on this CPU build")
    assert_caught_only_by(fp8_linear.EXAMPLE, edge, unscaled)


def _scaled_mm_runs() -> bool:
    # Both scalings the example uses: torch 2.11's CPU build has tensorwise only (rowwise is an internal assert).
    try:
        a = torch.ones(16, 16).to(torch.float8_e4m3fn)
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(()), scale_b=torch.ones(()), out_dtype=torch.bfloat16)
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.bfloat16)
        return True
    except (RuntimeError, NotImplementedError):
        return False


def test_fp8_linear_scaled_variants_pass_every_distribution():
    from ch16 import fp8_linear
    if not _scaled_mm_runs():
        pytest.skip("torch._scaled_mm with e4m3, tensorwise and rowwise, does not run on this CPU build")
    assert_honest_everywhere(fp8_linear.EXAMPLE, **{n: v for n, v in fp8_linear.EXAMPLE.optimized.items()})


# ---- ch18: paged decode attention with a softmax that does not subtract the max ----

def test_paged_decode_softmax_without_max_fails_on_large_scores():
    from ch18 import paged_decode as pd

    def no_max(inputs):
        q, k, v, table, lengths, ps = (inputs[n] for n in ("q", "k", "v", "block_table", "lengths", "page_size"))
        b, hq, hd = q.shape
        hkv = k.shape[1]
        pos = torch.arange(int(lengths.max()))
        slots = table.long().gather(1, (pos // ps).expand(b, -1)) * ps + pos % ps
        keys, vals = k[slots].permute(0, 2, 1, 3), v[slots].permute(0, 2, 1, 3)
        scores = q.view(b, hkv, hq // hkv, hd) @ keys.transpose(-1, -2) / math.sqrt(hd)
        e = torch.exp(scores) * (pos < lengths[:, None])[:, None, None, :]
        return ((e / e.sum(-1, keepdim=True)) @ vals).reshape(b, hq, hd)

    assert_caught_only_by(pd.EXAMPLE, "large_scores", no_max)


# ---- the rule: an example whose math has edges declares them, or says why not ----

EDGE_MATH = re.compile(r"softmax|(?:layer|rms|group|batch)_?norm|\bnorm\(|\bnormalize\b|\bexp\b|\blog\b|\bsqrt\b|"
                       r"\brsqrt\b|\bgelu\b|\btanh\b|\bfp8\b|float8|histogram|\bbincount\b|\btopk\b", re.IGNORECASE)
DECLARED = re.compile(r"^\s*distributions\s*=", re.MULTILINE)
EXCUSED = re.compile(r"^# no edge distributions: \S", re.MULTILINE)
EXAMPLES = sorted(p for p in REPO_ROOT.glob("ch*/*.py") if is_example_file(p))


def test_the_rule_finds_the_examples_it_is_about():
    flagged = {p.relative_to(REPO_ROOT).as_posix() for p in EXAMPLES if EDGE_MATH.search(p.read_text())}
    assert {"ch14/fused_softmax.py", "ch14/layernorm.py", "ch9/fused_l2norm.py", "ch16/moe_layer.py"} <= flagged
    assert "ch7/copy_bandwidth.py" not in flagged


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.relative_to(REPO_ROOT).as_posix() for p in EXAMPLES])
def test_examples_with_edge_math_declare_distributions_or_say_why_not(path):
    src = path.read_text()
    if not EDGE_MATH.search(src):
        return
    assert DECLARED.search(src) or EXCUSED.search(src), (
        f"{path.name} mentions {EDGE_MATH.search(src).group(0)!r}: declare `distributions=` for the inputs where its "
        "math has edge cases, or add a comment `# no edge distributions: <why>`")
