"""One AdamW step over a decoder's parameters: a for-loop over tensors vs multi-tensor (foreach) vs fused.

The training-step profile (`profile_train_step.py`) shows the optimizer phase as hundreds of tiny kernels:
the for-loop AdamW launches about ten element-wise kernels per parameter tensor (decay, two moment
updates, bias corrections, sqrt, divide, add), each reading and writing whole tensors. `foreach=True`
batches each of those operations over all tensors at once (`_foreach_*` kernels: ~10 launches in all,
the same bytes); `fused=True` does the whole update in one pass per chunk of tensors: each element's
parameter, gradient and two moments are read once and written once.

Bound: bf16 parameters, gradients and moments: 7 accesses of 2 bytes per parameter (param, exp_avg and
exp_avg_sq read and written, grad read) = 14 B/param. `full` is the ~125 M-parameter decoder's tensors
(`train_common.CONFIGS["small"]`, 111 tensors): 1.75 GB, ~0.4 ms at ~4.5 TB/s. The for-loop moves several
times those bytes and adds ~1200 launches (~5 us each: ~6 ms) on top.

Verification: the updated parameters of every variant against the for-loop's (bf16 on a GPU: the fused
kernel computes in fp32 and rounds once, so results differ in the last bf16 bit: bf16 tolerance).

Distributions: `normal` (moments as after some training: sqrt(v_hat) ~ 6e-3, far above eps); `tiny_grads`
(gradients and moments a million times smaller: sqrt(v_hat) ~ 6e-9 is below eps = 1e-8, so eps sets the
step; an update written m_hat * rsqrt(v_hat), eps left out, passes `normal` and takes steps ~2.5x too
large here). In bf16 on a GPU a step is then about one bf16 ulp of the parameters, inside the tolerance:
the fp32 run on the CPU (tests/test_edge_distributions.py) is the one that catches that mistake.
"""
from __future__ import annotations

import functools

import torch
from torch.optim.adamw import adamw as adamw_functional

from ch13.train_common import CONFIGS
from harness import Example, main

# which decoder's parameter shapes
MODEL = {"tiny": "tiny", "small": "tiny", "full": "small"}
WIDE_TINY = 4  # small: the tiny decoder's shapes, each widened this many times (a few MiB in all)


@functools.cache
def shapes(size: str) -> tuple[torch.Size, ...]:
    """The decoder's parameter shapes, in `Decoder.parameters()` order (from its config: no model is built)."""
    c = CONFIGS[MODEL[size]]
    q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    block = [(c.dim,), (q, c.dim), (kv, c.dim), (kv, c.dim), (c.dim, q),          # attention norm, wq wk wv wo
             (c.dim,), (c.ffn_dim, c.dim), (c.ffn_dim, c.dim), (c.dim, c.ffn_dim)]  # ffn norm, w1 w3 w2
    out = [(c.vocab, c.dim), *block * c.n_layers, (c.dim,), (c.vocab, c.dim)]
    if size == "small":
        out = [(s[0] * WIDE_TINY, *s[1:]) for s in out]
    return tuple(torch.Size(s) for s in out)


def setup(size, device, seed, dist="normal"):
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    g = torch.Generator(device=device).manual_seed(seed)

    def draw(scale, positive=False):
        out = []
        for s in shapes(size):
            t = torch.randn(s, device=device, generator=g) * scale
            out.append((t.abs() if positive else t).to(dtype))
        return out

    # moments as after some training: exp_avg ~ grad scale, exp_avg_sq ~ grad scale squared
    small = 1e-6 if dist == "tiny_grads" else 1.0
    return {"params": draw(0.02), "grads": draw(1e-2 * small), "exp_avgs": draw(1e-3 * small),
            "exp_avg_sqs": draw(1e-5 * small ** 2, True)}


def adamw(inputs, **impl):
    params = inputs["params"]
    device = params[0].device
    on_device = impl.get("fused", False)  # the fused kernel wants its step counters beside the parameters
    steps = [torch.tensor(10.0, device=device if on_device else "cpu") for _ in params]
    adamw_functional(params, inputs["grads"], inputs["exp_avgs"], inputs["exp_avg_sqs"], [], steps,
                            amsgrad=False, beta1=0.9, beta2=0.95, lr=1e-3, weight_decay=0.1, eps=1e-8,
                            maximize=False, **impl)
    return params  # updated in place (declared: mutates_inputs, output_may_alias_input)


def n_params(inputs) -> int:
    return sum(p.numel() for p in inputs["params"])


EXAMPLE = Example(
    title="AdamW step over a decoder's parameters: for-loop vs foreach vs fused",
    setup=setup,
    baseline=lambda inputs: adamw(inputs, foreach=False),
    baseline_name="for_loop",
    optimized={"foreach": lambda inputs: adamw(inputs, foreach=True),
               "fused": lambda inputs: adamw(inputs, fused=True)},
    bytes_moved=lambda inputs: 7 * n_params(inputs) * inputs["params"][0].element_size(),
    items=n_params, items_unit="params",
    mutates_inputs=True, output_may_alias_input=True,
    fresh_inputs=False,  # 4 x 111 tensors drawn per set: too slow to redraw before every sample
    distributions=("normal", "tiny_grads"),
)

if __name__ == "__main__":
    main(EXAMPLE)
