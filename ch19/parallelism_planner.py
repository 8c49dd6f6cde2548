"""An adaptive parallelism planner: memory and communication per GPU for every DP x TP x PP (x FSDP) layout of a
decoder on N GPUs, the layouts that fit, and the one to pick.

    python -m ch19.parallelism_planner --model-size 7B --gpus 8 [--gpu-mem-gb 80] [--check] [--json OUT]

Memory per GPU = model states + activations:
- states: bytes per parameter held by the rank: `mixed` (bf16 weights and gradients, fp32 master weights and
  Adam moments: 2 + 2 + 12 = 16 B, as in the ZeRO paper) or `bf16` (everything bf16, as Chapter 13 trains:
  8 B). TP shards every layer's matrices and the vocabulary by t; PP gives a stage L/p layers (the first stage
  also holds the embedding, the last the output head; the table shows the larger stage); FSDP (ZeRO-3) shards
  the rank's states over the d data-parallel ranks and gathers two layers at a time (current and prefetched).
- activations: bytes saved for the backward per token, measured on this codebase's decoder (`inference.model`)
  in bf16: per layer ~24.4 h + 8 f (h the width, f the FFN width), plus ~4 V for the fp32 logits and ~9 h;
  TP divides them by t (sequence parallelism assumed), and a 1F1B pipeline's first stage holds p micro-batches
  of its L/p layers: as much as the whole model's for one micro-batch, so PP does not cut peak activations.
Communication per GPU per step (bytes sent): DP all-reduce 2 (d-1)/d x gradient bytes; FSDP 3 (d-1)/d x bf16
weight bytes (gather forward, gather backward, reduce-scatter); TP 4 all-reduces per layer per micro-batch of
b s h x 2 bytes each, x 2 (t-1)/t; PP one activation (b s h x 2 bytes) per micro-batch each way.
The pick: among the layouts that fit, the shortest estimated step: compute (6 x parameters x tokens FLOPs over
the GPUs at `--tflops` sustained) stretched by the pipeline bubble (p-1)/(m+p-1), plus communication not
overlapped, over the link that carries it (TP stays within one node of 8 GPUs on NVLink, ~450 GB/s; DP and PP
use NVLink within a node, the network, ~50 GB/s per GPU, beyond).
Not counted: framework buffers (NCCL, DDP buckets), allocator fragmentation, the CUDA context (~0.5-1 GiB).

`--check` measures the memory model on this device at small scale: a real training step of the 125 M decoder
and of the shard a TP=2 rank and a PP=2 stage would hold, states from `memory_allocated`, activations from the
bytes the autograd graph saves (and, on CUDA, the peak allocated during the step), each against the formula.

Bound: a planner is arithmetic; the check's bound is one training step of a 125 M model (milliseconds).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from inference.model import CONFIGS, Config

MODELS: dict[str, Config] = {
    "1B": CONFIGS["1b"], "8B": CONFIGS["8b"],
    "7B": Config(vocab=32000, dim=4096, n_layers=32, n_heads=32, n_kv_heads=32, ffn_dim=11008),
    "13B": Config(vocab=32000, dim=5120, n_layers=40, n_heads=40, n_kv_heads=40, ffn_dim=13824),
    "70B": Config(vocab=32000, dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, ffn_dim=28672),
}
STATE_BYTES = {"mixed": 16, "bf16": 8}
NVLINK_GBPS, NETWORK_GBPS, NODE = 450.0, 50.0, 8
GIB = 2 ** 30


def layer_params(cfg: Config) -> int:
    hd = cfg.head_dim
    return cfg.dim * hd * (2 * cfg.n_heads + 2 * cfg.n_kv_heads) + 3 * cfg.dim * cfg.ffn_dim


def act_bytes_per_token(cfg: Config, layers: int, t: int = 1, logits: bool = True) -> float:
    """Saved-for-backward bytes per token (bf16 training), fitted on inference.model.Decoder (see --check)."""
    return (layers * (24.4 * cfg.dim + 8 * cfg.ffn_dim) + (4 * cfg.vocab if logits else 0) + 9 * cfg.dim) / t


def rank_params(cfg: Config, t: int, p: int) -> int:
    """Parameters on the most loaded rank: ceil(L/p) layers / t, plus the embedding or head / t (both if p=1)."""
    per_stage = -(-cfg.n_layers // p)
    layers = per_stage * (layer_params(cfg) // t + 2 * cfg.dim)
    ends = 2 if p == 1 else 1
    return layers + ends * cfg.vocab * cfg.dim // t + cfg.dim


def plan(cfg: Config, d: int, t: int, p: int, fsdp: bool, *, recipe: str, seq: int, micro_batch: int,
         global_batch: int, tflops: float = 400.0) -> dict:
    params = rank_params(cfg, t, p)
    states = params * STATE_BYTES[recipe]
    gathered = 0
    if fsdp:
        states /= d
        gathered = 2 * (layer_params(cfg) // t) * (2 + 2)  # two layers' bf16 weights and gradients, unsharded
    stage_layers = -(-cfg.n_layers // p)
    tokens = micro_batch * seq
    in_flight = p  # 1F1B: the first stage holds p micro-batches' activations
    acts = tokens * in_flight * act_bytes_per_token(cfg, stage_layers, t, logits=(p == 1))
    if p > 1:  # the last stage holds fewer micro-batches but the logits: take the larger
        acts = max(acts, tokens * act_bytes_per_token(cfg, stage_layers, t, logits=True))
    m = max(1, global_batch // (d * micro_batch))  # micro-batches per step per pipeline
    grad_bytes = params * 2
    dp_bytes = (3 if fsdp else 2) * (d - 1) / d * grad_bytes if d > 1 else 0.0
    tp_bytes = 4 * stage_layers * m * tokens * cfg.dim * 2 * 2 * (t - 1) / t if t > 1 else 0.0
    pp_bytes = 2 * m * tokens * cfg.dim * 2 if p > 1 else 0.0
    # TP inside a node on NVLink; DP and PP cross nodes once the layout spans more than one node
    dp_link = NVLINK_GBPS if d * t * p <= NODE else NETWORK_GBPS
    comm_s = tp_bytes / (NVLINK_GBPS * 1e9) + (dp_bytes + pp_bytes) / (dp_link * 1e9)
    bubble = (p - 1) / (m + p - 1)
    compute_s = 6 * cfg.n_params() * global_batch * seq / (d * t * p) / (tflops * 1e12)
    return {"layout": f"DP{d}{'(FSDP)' if fsdp else ''} x TP{t} x PP{p}", "dp": d, "tp": t, "pp": p, "fsdp": fsdp,
            "params_per_gpu": params / d if fsdp else params, "states_gib": (states + gathered) / GIB,
            "activations_gib": acts / GIB,
            "total_gib": (states + gathered + acts) / GIB, "comm_gb_per_step": (dp_bytes + tp_bytes + pp_bytes) / 1e9,
            "comm_s_estimate": comm_s, "bubble": bubble, "micro_batches": m,
            "step_s_estimate": compute_s / (1 - bubble) + comm_s}


def layouts(n_gpus: int) -> list[tuple[int, int, int, bool]]:
    out = []
    for t in (1, 2, 4, 8):
        for p in (1, 2, 4, 8, 16):
            if t > NODE or n_gpus % (t * p) or t > n_gpus:
                continue
            d = n_gpus // (t * p)
            out.append((d, t, p, False))
            if d > 1:
                out.append((d, t, p, True))
    return out


def planner(cfg: Config, n_gpus: int, gpu_mem_gb: float, **kw) -> tuple[list[dict], dict | None]:
    rows = [plan(cfg, d, t, p, f, **kw) for d, t, p, f in layouts(n_gpus)]
    for r in rows:
        r["fits"] = r["total_gib"] * GIB <= gpu_mem_gb * 1e9
    fitting = [r for r in rows if r["fits"]]
    best = min(fitting, key=lambda r: r["step_s_estimate"]) if fitting else None
    return rows, best


def table(rows: list[dict], best: dict | None) -> str:
    lines = ["| layout | params/GPU | states GiB | activations GiB | total GiB | fits | comm GB/step | bubble | step s (est.) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["total_gib"]):
        mark = " **(pick)**" if r is best else ""
        lines.append(f"| {r['layout']}{mark} | {r['params_per_gpu'] / 1e9:.2f} B | {r['states_gib']:.1f} | "
                     f"{r['activations_gib']:.1f} | {r['total_gib']:.1f} | {'yes' if r['fits'] else 'no'} | "
                     f"{r['comm_gb_per_step']:.1f} | {r['bubble']:.2f} | {r['step_s_estimate']:.2f} |")
    return "\n".join(lines)


def measure(cfg: Config, batch: int, seq: int, device: torch.device) -> dict:
    """One bf16 (CPU: fp32 is what runs fast there, so bf16 anyway for the byte count) AdamW step: states bytes and
    saved-activation bytes, measured, against the formulas."""
    import torch.nn.functional as F

    from ch13.train_common import make_model, make_optimizer
    model = make_model("small", device, seed=0, cfg=cfg, dtype=torch.bfloat16)
    opt = make_optimizer(model, "foreach")
    tok = torch.randint(0, cfg.vocab, (batch, seq + 1), device=device)
    saved: dict[int, int] = {}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(x):
        s = x.untyped_storage()
        if s.data_ptr() not in params:
            saved[s.data_ptr()] = s.nbytes()
        return x

    cuda = device.type == "cuda"
    for _ in range(2):  # the first step creates the Adam moments; the second is measured
        saved.clear()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            logits = model(tok[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1).float(), tok[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    n = sum(p.numel() for p in model.parameters())
    row = {"params": n, "tokens": batch * seq,
           "states_bytes_formula": n * 2 * 3,  # weights and two moments between steps (gradients freed)
           "activation_bytes_formula": batch * seq * act_bytes_per_token(cfg, cfg.n_layers),
           "activation_bytes_saved": sum(saved.values())}
    if cuda:
        row["states_bytes_measured"] = before
        row["peak_step_bytes_measured"] = torch.cuda.max_memory_allocated()
        row["peak_formula"] = before + n * 2 + row["activation_bytes_formula"]
    else:  # the states are the tensors themselves
        row["states_bytes_measured"] = sum(t.numel() * t.element_size() for t in model.parameters()) + sum(
            v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if torch.is_tensor(v)
            and v.dim() > 0)
    row["activation_ratio"] = row["activation_bytes_saved"] / row["activation_bytes_formula"]
    row["states_ratio"] = row["states_bytes_measured"] / row["states_bytes_formula"]
    return row


def check(device: torch.device, tiny: bool) -> list[dict]:
    base = Config(vocab=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128, max_seq=64) if tiny else \
        Config(vocab=32000, dim=768, n_layers=12, n_heads=12, n_kv_heads=4, ffn_dim=2048, max_seq=1024)
    shards = {"whole model (DP)": base,
              "TP=2 rank": dataclasses.replace(base, n_heads=base.n_heads // 2, n_kv_heads=base.n_kv_heads // 2,
                                               ffn_dim=base.ffn_dim // 2),
              "PP=2 stage": dataclasses.replace(base, n_layers=base.n_layers // 2)}
    batch, seq = (2, 32) if tiny else (4, 1024)
    rows = []
    for name, cfg in shards.items():
        r = {"shard": name, **measure(cfg, batch, seq, device)}
        rows.append(r)
        print(f"check {name:>17}: states {r['states_bytes_measured'] / 2**20:.1f} MiB measured vs "
              f"{r['states_bytes_formula'] / 2**20:.1f} formula; activations {r['activation_bytes_saved'] / 2**20:.1f}"
              f" MiB saved vs {r['activation_bytes_formula'] / 2**20:.1f} formula ({r['activation_ratio']:.2f}x)")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-size", default="7B", choices=list(MODELS))
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--gpu-mem-gb", type=float, default=80.0)
    ap.add_argument("--recipe", default="mixed", choices=list(STATE_BYTES))
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--micro-batch", type=int, default=1)
    ap.add_argument("--global-batch", type=int, default=64, help="sequences per optimizer step")
    ap.add_argument("--tflops", type=float, default=400.0, help="sustained bf16 TFLOP/s per GPU (step estimate)")
    ap.add_argument("--check", action="store_true", help="measure the memory model on this device at small scale")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="where --check runs")
    ap.add_argument("--tiny", action="store_true", help="--check at a tiny size (CI)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.gpus < 1 or args.seq < 1 or args.micro_batch < 1 or args.global_batch < 1 or args.gpu_mem_gb <= 0 \
            or args.tflops <= 0:
        ap.error("--gpus, --seq, --micro-batch, --global-batch, --gpu-mem-gb and --tflops must be positive")
    cfg = MODELS[args.model_size]
    rows, best = planner(cfg, args.gpus, args.gpu_mem_gb, recipe=args.recipe, seq=args.seq,
                         micro_batch=args.micro_batch, global_batch=args.global_batch, tflops=args.tflops)
    print(f"{args.model_size}: {cfg.n_params() / 1e9:.2f} B parameters, {args.gpus} GPUs of {args.gpu_mem_gb:g} GB, "
          f"{args.recipe} states, micro-batch {args.micro_batch} x {args.seq} tokens, global batch {args.global_batch}")
    print(table(rows, best))
    print(f"pick: {best['layout']}" if best else "pick: nothing fits (more GPUs, activation checkpointing, or offload)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("parallelism_planner: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    checked = None
    if args.check:
        if device.type == "cpu":
            torch.set_num_threads(1)
        checked = check(device, args.tiny)
    if args.json:
        from harness.device import provenance
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"name": "parallelism_planner", "provenance": provenance(device),
                                         "model": args.model_size, "n_params": cfg.n_params(), "rows": rows,
                                         "pick": best and best["layout"], "check": checked}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
