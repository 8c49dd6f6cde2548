"""Our decoder against `transformers`' Llama: the same config and weights must give the same logits.

`to_transformers(model)` builds `transformers.LlamaForCausalLM` from our `Config` and copies our weights into it
(a name mapping, nothing converted); `compare_logits` runs both on the same tokens. This is the check that the
engine's model is the Llama architecture and not merely something like it (RoPE layout, RMSNorm placement,
GQA head grouping, SwiGLU's gate/up order would each show up as a logit difference).

    python -m inference.hf_compat --config 1b --device cuda --dtype float32,bfloat16 --json hf_1b.json

Bound: one forward pass of each model (2 * n_params FLOPs per token); at 1B on an H200, well under a second.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from inference.model import CONFIGS, Decoder

# our name -> transformers' name, per layer ({i} is the layer index)
LAYER_NAMES = {
    "attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj",
    "attention.wv": "self_attn.v_proj", "attention.wo": "self_attn.o_proj",
    "feed_forward.w1": "mlp.gate_proj", "feed_forward.w3": "mlp.up_proj", "feed_forward.w2": "mlp.down_proj",
    "attention_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}


def hf_name(ours: str) -> str:
    """`layers.3.attention.wq.weight` -> `model.layers.3.self_attn.q_proj.weight`."""
    if ours == "tok_embeddings.weight":
        return "model.embed_tokens.weight"
    if ours == "norm.weight":
        return "model.norm.weight"
    if ours == "output.weight":
        return "lm_head.weight"
    _, i, rest = ours.split(".", 2)
    module, param = rest.rsplit(".", 1)
    return f"model.layers.{i}.{LAYER_NAMES[module]}.{param}"


def to_transformers(model: Decoder):
    """A `LlamaForCausalLM` with our config and a copy of our weights (same dtype and device)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = model.cfg
    hf_cfg = LlamaConfig(
        vocab_size=cfg.vocab, hidden_size=cfg.dim, intermediate_size=cfg.ffn_dim, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.head_dim,
        max_position_embeddings=cfg.max_seq, rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
        hidden_act="silu", attention_bias=False, mlp_bias=False, tie_word_embeddings=False)
    hf_cfg._attn_implementation = "sdpa"
    p = model.output.weight
    with torch.device("meta"):  # no random init of a second copy: the weights come from ours
        hf = LlamaForCausalLM(hf_cfg)
    hf = hf.to_empty(device=p.device).to(p.dtype)
    theirs = dict(hf.named_parameters())
    with torch.no_grad():
        for name, w in model.named_parameters():
            theirs.pop(hf_name(name)).copy_(w)
        # the rotary tables were built on the meta device: rebuild them on the real one
        rot = hf.model.rotary_emb
        inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, device=p.device).float() / cfg.head_dim)
        rot.inv_freq = inv_freq
        if hasattr(rot, "original_inv_freq"):
            rot.original_inv_freq = inv_freq
    if theirs:
        raise RuntimeError(f"transformers parameters left without a value: {sorted(theirs)}")
    return hf.eval()


@torch.no_grad()
def compare_logits(model: Decoder, tokens: torch.Tensor) -> dict:
    """Both models on `tokens` (batch, seq): max |diff| relative to the logits' scale, top-1 agreement."""
    hf = to_transformers(model)
    ours = model(tokens).float()
    theirs = hf(input_ids=tokens, use_cache=False).logits.float()
    diff = (ours - theirs).abs().max().item()
    return {"max_abs_diff": diff, "logit_scale": ours.abs().max().item(),
            "rel_diff": diff / max(ours.abs().max().item(), 1e-12),
            "top1_agreement": (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item(),
            "tokens": list(tokens.shape)}


# fp32 is the exact check: the two implementations differ only in rounding order. In bf16 they also round at
# different points (our RoPE is applied in fp32, theirs in bf16), 2^-8 relative each, over every layer: 10% bound
TOLERANCE = {"float32": 1e-4, "bfloat16": 0.1}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", help="float32, bfloat16 or both, comma-separated")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    dtypes = args.dtype.split(",")
    if args.config not in CONFIGS or not set(dtypes) <= set(TOLERANCE):
        print(f"hf_compat: --config is one of {', '.join(CONFIGS)}; --dtype of {', '.join(TOLERANCE)}", file=sys.stderr)
        return 2
    try:
        import transformers
    except ImportError:
        print("hf_compat: transformers is not installed", file=sys.stderr)
        return 2
    from harness.device import provenance
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = CONFIGS[args.config]
    with torch.device(device):
        model = Decoder(cfg).eval()
    tokens = torch.randint(0, cfg.vocab, (2, min(args.seq, cfg.max_seq)), device=device)
    results = []
    for dtype in dtypes:  # the same weights, rounded to each dtype in turn (fp32 first: rounding is one way)
        res = compare_logits(model.to(getattr(torch, dtype)), tokens)
        res.update(config=args.config, dtype=dtype, tolerance_rel=TOLERANCE[dtype],
                   passed=res["rel_diff"] <= TOLERANCE[dtype])
        print(json.dumps(res))
        results.append(res)
    if args.json:
        args.json.write_text(json.dumps({"provenance": provenance(device), "transformers": transformers.__version__,
                                         "results": results}, indent=1))
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
