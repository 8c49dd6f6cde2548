"""Expert parallelism vs tensor parallelism for a mixture-of-experts layer, on paper: where the experts go, how
many bytes each GPU holds and sends per MoE layer, and what that costs at a given link bandwidth.

    python -m ch15.moe_parallel --model mixtral-8x7b --gpus 8 --gpus-per-node 8 --tokens 8192
    python -m ch15.moe_parallel --experts 64 --top-k 2 --dim 4096 --ffn 14336 --layers 32 --gpus 16 --json out.json

The two strategies, for a global batch of T tokens per forward, E experts of hidden size d and expert FFN size f
(SwiGLU: 3*d*f weights), top-k routing, G GPUs, b bytes per element:

- **Expert parallelism (EP)**: the experts are spread whole over the GPUs (E/G each, contiguous blocks, the first
  E mod G GPUs taking one more), attention runs data-parallel (T/G tokens per GPU). Each token goes to its k
  experts and comes back: under uniform routing a token copy stays local with probability 1/G, so one all-to-all
  (dispatch) plus one (combine) send 2 * (T/G) * k * d * b * (G-1)/G bytes per GPU per MoE layer.
- **Tensor parallelism (TP)**: every expert is split G ways along f (w1/w3 by columns, w2 by rows); every GPU sees
  all T tokens and computes a slice of every chosen expert; the partial outputs, summed over the k experts
  locally, are all-reduced: a ring all-reduce sends 2 * (G-1)/G * T * d * b bytes per GPU per MoE layer.

Same weight bytes per GPU either way (E*3*d*f*b/G, up to EP's rounding); the traffic ratio EP/TP is k/G, so
expert parallelism sends less whenever top-k < G, and its messages are per-destination (all-to-all) rather
than one ring. TP also repeats the router and every expert GEMM's launch on G GPUs with 1/G of the width each,
which lowers each GEMM's arithmetic intensity; EP keeps whole experts (full-width GEMMs) but has load
imbalance: under uniform random routing the busiest expert sees more than T*k/E tokens, which a capacity factor
(buffers of capacity * T*k/E tokens per expert) bounds at the price of dropped or padded tokens.

Time per layer = bytes over the link's bandwidth: the part that crosses nodes at --inter-gbps, the rest at
--intra-gbps (the GPUs of one node first: EP's off-node share is (G - gpus_per_node)/G of the off-GPU traffic,
a ring all-reduce spanning nodes runs at the slowest link). A model of bytes, not a measurement: latency per
message, overlap with compute and skewed routing are not in it. The runnable expert-parallel all-to-all is the
multi-GPU chapters' (Chapter 4's collectives measure the links these bandwidths stand for).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class MoEModel:
    experts: int
    top_k: int
    dim: int
    ffn: int           # each expert's intermediate size
    moe_layers: int
    bytes_per_elem: int = 2

    def expert_bytes(self) -> int:
        return 3 * self.dim * self.ffn * self.bytes_per_elem  # SwiGLU: w1, w3 (d x f) and w2 (f x d)


# Public configurations (routed experts only; DeepSeek-V3's shared expert and dense layers are left out).
MODELS = {
    "mixtral-8x7b": MoEModel(experts=8, top_k=2, dim=4096, ffn=14336, moe_layers=32),
    "deepseek-v3": MoEModel(experts=256, top_k=8, dim=7168, ffn=2048, moe_layers=58),
    "qwen3-30b-a3b": MoEModel(experts=128, top_k=8, dim=2048, ffn=768, moe_layers=48),
}


@dataclass(frozen=True)
class Cluster:
    gpus: int
    gpus_per_node: int
    intra_gbps: float = 450.0   # GB/s per GPU one way (NVLink 4 on H100/H200: 900 GB/s both ways)
    inter_gbps: float = 50.0    # GB/s per GPU one way (one 400 Gb/s NIC per GPU)


def placement(experts: int, gpus: int) -> list[list[int]]:
    """Contiguous blocks of experts per GPU; the first experts % gpus GPUs hold one more."""
    base, extra = divmod(experts, gpus)
    out, e = [], 0
    for g in range(gpus):
        n = base + (g < extra)
        out.append(list(range(e, e + n)))
        e += n
    return out


def expert_parallel(m: MoEModel, c: Cluster, tokens: int) -> dict:
    g = c.gpus
    if g > m.experts:
        return {"strategy": "EP", "error": f"{g} GPUs but only {m.experts} experts (EP needs gpus <= experts)"}
    place = placement(m.experts, g)
    most = max(len(p) for p in place)
    off_gpu = (g - 1) / g
    send = 2 * (tokens / g) * m.top_k * m.dim * m.bytes_per_elem * off_gpu  # dispatch + combine, per GPU
    inter_share = max(0, g - c.gpus_per_node) / (g - 1) if g > 1 else 0.0  # of the off-GPU destinations
    t = send * (1 - inter_share) / (c.intra_gbps * 1e9) + send * inter_share / (c.inter_gbps * 1e9)
    return {"strategy": "EP", "experts_per_gpu": most, "placement": place,
            "expert_weight_bytes_per_gpu_per_layer": most * m.expert_bytes(), "tokens_per_gpu": tokens / g,
            "comm": "all-to-all x2 (dispatch, combine)", "send_bytes_per_gpu_per_layer": send,
            "inter_node_fraction": inter_share, "comm_s_per_layer": t, "comm_s_per_forward": t * m.moe_layers,
            "mean_tokens_per_expert": tokens * m.top_k / m.experts}


def tensor_parallel(m: MoEModel, c: Cluster, tokens: int) -> dict:
    g = c.gpus
    if m.ffn % g:
        return {"strategy": "TP", "error": f"expert ffn {m.ffn} is not divisible by {g} GPUs"}
    send = 2 * (g - 1) / g * tokens * m.dim * m.bytes_per_elem  # ring all-reduce of (T, d)
    bw = c.intra_gbps if g <= c.gpus_per_node else c.inter_gbps  # a ring runs at its slowest link
    t = send / (bw * 1e9)
    return {"strategy": "TP", "experts_per_gpu": m.experts, "expert_slice": f"1/{g} of ffn ({m.ffn // g})",
            "expert_weight_bytes_per_gpu_per_layer": m.experts * m.expert_bytes() // g, "tokens_per_gpu": tokens,
            "comm": "all-reduce (ring)", "send_bytes_per_gpu_per_layer": send,
            "inter_node_fraction": 0.0 if g <= c.gpus_per_node else 1.0, "comm_s_per_layer": t,
            "comm_s_per_forward": t * m.moe_layers, "mean_tokens_per_expert": tokens * m.top_k / m.experts}


def compare(m: MoEModel, c: Cluster, tokens: int) -> list[dict]:
    return [expert_parallel(m, c, tokens), tensor_parallel(m, c, tokens)]


def table(rows: list[dict], moe_layers: int) -> str:
    head = ("strategy", "experts/GPU", "expert GB/GPU (all layers)", "tokens/GPU", "sent MB/GPU/layer", "off-node",
            "comm ms/layer", "comm ms/forward")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['strategy']} | n/a: {r['error']}")
            continue
        lines.append(" | ".join([
            r["strategy"], str(r["experts_per_gpu"]) + ("" if r["strategy"] == "EP" else f" ({r['expert_slice']})"),
            f"{r['expert_weight_bytes_per_gpu_per_layer'] * moe_layers / 1e9:.2f}", f"{r['tokens_per_gpu']:.0f}",
            f"{r['send_bytes_per_gpu_per_layer'] / 1e6:.1f}", f"{r['inter_node_fraction']:.0%}",
            f"{r['comm_s_per_layer'] * 1e3:.3f}", f"{r['comm_s_per_forward'] * 1e3:.2f}"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=list(MODELS), help="a preset; the options below override its fields")
    for name in ("experts", "top-k", "dim", "ffn", "moe-layers", "bytes-per-elem"):
        ap.add_argument(f"--{name}", type=int)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--intra-gbps", type=float, default=450.0, help="GB/s per GPU one way inside a node")
    ap.add_argument("--inter-gbps", type=float, default=50.0, help="GB/s per GPU one way between nodes")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per forward, whole cluster")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    fields = {k: getattr(args, k.replace("-", "_")) for k in ("experts", "top_k", "dim", "ffn", "moe_layers", "bytes_per_elem")}
    base = asdict(MODELS[args.model]) if args.model else {}
    spec = base | {k: v for k, v in fields.items() if v is not None}
    missing = [k for k in ("experts", "top_k", "dim", "ffn", "moe_layers") if k not in spec]
    numbers = [v for v in spec.values()] + [args.gpus, args.gpus_per_node, args.tokens]
    if missing:
        print(f"moe_parallel: give --model or all of {', '.join('--' + k.replace('_', '-') for k in missing)}", file=sys.stderr)
        return 2
    if min(numbers) < 1 or args.intra_gbps <= 0 or args.inter_gbps <= 0 or spec["top_k"] > spec["experts"]:
        print("moe_parallel: sizes and bandwidths must be positive, and top-k <= experts", file=sys.stderr)
        return 2
    m = MoEModel(**spec)
    c = Cluster(args.gpus, min(args.gpus_per_node, args.gpus), args.intra_gbps, args.inter_gbps)
    rows = compare(m, c, args.tokens)
    print(f"{args.model or 'custom'}: {m.experts} experts, top-{m.top_k}, d={m.dim}, f={m.ffn}, {m.moe_layers} MoE "
          f"layers; {c.gpus} GPUs ({c.gpus_per_node}/node, {c.intra_gbps:g}/{c.inter_gbps:g} GB/s); {args.tokens} tokens")
    print(table(rows, m.moe_layers))
    if "placement" in rows[0]:
        print("EP placement: " + ", ".join(f"GPU{g}: experts {p[0]}-{p[-1]}" if len(p) > 1 else f"GPU{g}: expert {p[0]}"
                                           for g, p in enumerate(rows[0]["placement"])))
    ok = [r for r in rows if "error" not in r]
    if len(ok) == 2:
        print(f"EP/TP bytes sent = top_k/G = {ok[0]['send_bytes_per_gpu_per_layer'] / ok[1]['send_bytes_per_gpu_per_layer']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": asdict(m), "cluster": asdict(c), "tokens": args.tokens,
                                         "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
