"""Memory per GPU under data, fully sharded, tensor and pipeline parallelism: the hybrid-parallelism table.

    python -m ch4.memory_model --config 8b --world 8 --batch 1 --seq 4096 [--precision mixed] [--json -]

Training memory has four parts, and each strategy divides a different one by the number of GPUs N:

| per GPU        | params            | grads        | optimizer states | activations                        |
|----------------|-------------------|--------------|------------------|------------------------------------|
| DP (DDP)       | P                 | P            | O                | A(local batch)                     |
| FSDP (ZeRO-3)  | P/N + gathered    | P/N          | O/N              | A(local batch)                     |
| TP             | P_tp/N + P_rest   | same         | same             | replicated part + sharded part / N |
| PP (stage)     | P_stage           | P_stage      | O_stage          | A(stage's layers, microbatches)    |

with P = parameters x bytes/parameter, O = Adam's two moments (+ an fp32 master copy in mixed precision).
Activations are counted from what autograd saves in `inference.model.Decoder` (checked against a
saved-tensor hook in tests/test_ch4_strategies.py), per token, fp32, memory-efficient attention (no
t x t score matrix, whose output is already laid out for wo): per block 8 dim-sized tensors (block input,
two norm outputs each twice, queries after rotary, attention output, the residual sum) + keys and values
(dim each when grouped-query heads are repeated, else kv_dim) + 4 ffn-sized ones (gate, up, silu, product);
the head saves 3 dim-sized tensors and the log-softmax (vocab). `workspace` is what exists only transiently
at the start of backward: the logits and their gradient (2 x vocab per token). Under TP the norms, residuals and block inputs stay
replicated; attention and MLP interiors are split by N.

The predicted total is the sum (the table's convention). It is an upper bound of a kind: gradients appear as
activations are freed, so the true peak lies between max(parts) and the sum; the measured peaks
(`ch4.parallel_strategies`) show where.
"""
from __future__ import annotations

import argparse
import sys

from inference.model import CONFIGS, Config

STRATEGIES = ("single", "ddp", "fsdp", "tp", "pp")
# bytes per parameter: (params, grads, optimizer states)
PRECISIONS = {"fp32": (4, 4, 8),             # fp32 weights and grads, Adam's two fp32 moments
              "mixed": (2, 2, 12)}           # bf16 weights and grads; fp32 master copy + two fp32 moments
GiB = 2**30


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"memory_model: {message}", file=sys.stderr)
        sys.exit(2)


def param_counts(cfg: Config) -> dict[str, int]:
    """Parameters by where they go: the linear layers TP splits, everything else, one block, the embeddings."""
    hd = cfg.head_dim
    linear = cfg.dim * hd * (2 * cfg.n_heads + 2 * cfg.n_kv_heads) + 3 * cfg.dim * cfg.ffn_dim
    block = linear + 2 * cfg.dim
    return {"block": block, "block_linear": linear, "embedding": cfg.vocab * cfg.dim, "output": cfg.vocab * cfg.dim,
            "final_norm": cfg.dim, "total": cfg.n_layers * block + 2 * cfg.vocab * cfg.dim + cfg.dim}


def block_activation_elems(cfg: Config, tp: int = 1) -> float:
    """Elements autograd keeps per token for one block (fp32 training), the TP-split part divided by tp."""
    kv_dim = cfg.n_kv_heads * cfg.head_dim
    keys_values = 2 * cfg.dim if cfg.n_heads > cfg.n_kv_heads else 2 * kv_dim
    replicated = 6 * cfg.dim                       # block input, 2 x (normalised, scaled) for the two norms, residual
    split = 2 * cfg.dim + keys_values + 4 * cfg.ffn_dim   # queries, attention output, k, v, MLP interior
    small = 2 + cfg.n_heads                        # rsqrt of both norms, attention's logsumexp per head
    return replicated + (split + small) / tp


def head_activation_elems(cfg: Config) -> float:
    return 3 * cfg.dim + cfg.vocab + 4        # final residual, norm output twice, log-softmax; rsqrt, target


def per_rank(cfg: Config, strategy: str, world: int, batch: int, seq: int, precision: str = "fp32",
             micro: int | None = None) -> list[dict]:
    """Predicted bytes per rank for one training step. `batch` is sequences per GPU for DP/FSDP and the
    1-GPU run; TP and PP process the same global batch (world x batch) on every rank / across the stages."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if world < 1 or batch < 1 or seq < 1:
        raise ValueError("world, batch and seq must be positive")
    bp, bg, bo = PRECISIONS[precision]
    act_bytes = 4 if precision == "fp32" else 2
    n = param_counts(cfg)
    world = 1 if strategy == "single" else world
    tokens = batch * seq
    rows = []
    if strategy in ("single", "ddp", "fsdp"):
        p = n["total"]
        acts = tokens * (cfg.n_layers * block_activation_elems(cfg) + head_activation_elems(cfg))
        gathered = 0
        if strategy == "fsdp":
            # The root unit (embeddings, final norm, output) stays gathered through the step; blocks are
            # gathered one at a time with the next one prefetched.
            gathered = (n["embedding"] + n["output"] + n["final_norm"] + 2 * n["block"]) * bp
            p = p / world
        rows.append(_row(p, bp, bg, bo, acts * act_bytes, 2 * tokens * cfg.vocab * act_bytes, gathered))
        return rows * world
    if strategy == "tp":
        tokens *= world
        p = n["total"] - cfg.n_layers * n["block_linear"] * (1 - 1 / world)
        acts = tokens * (cfg.n_layers * block_activation_elems(cfg, world) + head_activation_elems(cfg))
        return [_row(p, bp, bg, bo, acts * act_bytes, 2 * tokens * cfg.vocab * act_bytes)] * world
    # pp: contiguous slices of blocks; stage 0 owns the embedding, the last stage the norm and the output.
    tokens *= world
    for stage, (lo, hi) in enumerate(stage_layers(cfg.n_layers, world)):
        p = (hi - lo) * n["block"]
        acts = tokens * (hi - lo) * block_activation_elems(cfg)
        work = 0.0
        if stage == 0:
            p += n["embedding"]
        if stage == world - 1:
            p += n["output"] + n["final_norm"]
            acts += tokens * head_activation_elems(cfg)
            work = 2 * tokens * cfg.vocab * act_bytes / (micro or world)   # one microbatch's logits at a time
        rows.append(_row(p, bp, bg, bo, acts * act_bytes, work))        # GPipe: every microbatch kept
    return rows


def stage_layers(n_layers: int, stages: int) -> list[tuple[int, int]]:
    """Blocks [lo, hi) of each pipeline stage, as even as possible (earlier stages take the remainder)."""
    if stages > n_layers:
        raise ValueError(f"{stages} pipeline stages need at least {stages} blocks, the model has {n_layers}")
    base, extra = divmod(n_layers, stages)
    out, lo = [], 0
    for s in range(stages):
        hi = lo + base + (1 if s < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def _row(params: float, bp: int, bg: int, bo: int, activations: float, workspace: float, gathered: float = 0.0) -> dict:
    r = {"params": params * bp, "grads": params * bg, "optimizer": params * bo, "activations": activations,
         "workspace": workspace, "gathered_params": gathered}
    r["total"] = sum(r.values())
    return r


def table(cfg: Config, world: int, batch: int, seq: int, precision: str) -> list[dict]:
    """One row per strategy: the largest rank's prediction (pipeline stages differ)."""
    out = []
    for s in STRATEGIES:
        if s == "pp" and world > cfg.n_layers:
            continue
        ranks = per_rank(cfg, s, world, batch, seq, precision)
        worst = max(ranks, key=lambda r: r["total"])
        out.append({"strategy": s, "world": 1 if s == "single" else world, **worst})
    return out


def render(rows: list[dict], head: str) -> str:
    from harness.report import text_table

    cols = ["params", "grads", "optimizer", "activations", "workspace", "gathered_params", "total"]
    return head + "\n" + text_table(["strategy", "GPUs"] + [c + " GiB" for c in cols],
                                    [[r["strategy"], str(r["world"])] + [f"{r[c] / GiB:.3g}" for c in cols] for r in rows])


def main(argv: list[str] | None = None) -> int:
    from harness.report import emit

    parser = _Parser(prog="python -m ch4.memory_model", description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=list(CONFIGS), default="8b")
    parser.add_argument("--world", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1, help="sequences per GPU")
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--precision", choices=list(PRECISIONS), default="mixed")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE")
    args = parser.parse_args(argv)
    if min(args.world, args.batch, args.seq) < 1:
        parser.error("--world, --batch and --seq must be positive")
    cfg = CONFIGS[args.config]
    rows = table(cfg, args.world, args.batch, args.seq, args.precision)
    report = {"schema": 1, "tool": "python -m ch4.memory_model", "config": args.config, "world": args.world,
              "batch_per_gpu": args.batch, "seq": args.seq, "precision": args.precision, "rows": rows}
    head = (f"{args.config} ({cfg.n_params() / 1e9:.3g} B params), {args.precision}, {args.world} GPUs, "
            f"{args.batch} x {args.seq} tokens per GPU (TP/PP: the same global batch)")
    emit(report, lambda r: render(r["rows"], head), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
