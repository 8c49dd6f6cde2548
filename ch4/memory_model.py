"""Memory per GPU under data, fully sharded, tensor and pipeline parallelism: the hybrid-parallelism table.

    python -m ch4.memory_model --config 8b --world 8 --batch 1 --seq 4096 [--precision mixed] [--json -]

Training memory has four parts, and each strategy divides a different one by the number of GPUs N:

| per GPU        | params            | grads        | optimizer states | activations                        |
|----------------|-------------------|--------------|------------------|------------------------------------|
| DP (DDP)       | P                 | P            | O                | A(local batch)                     |
| FSDP (ZeRO-3)  | P/N + gathered    | P/N          | O/N              | A(local batch)                     |
| TP             | P_tp/N + P_rest   | same         | same             | replicated part + sharded part / N |
| PP (stage)     | P_stage           | P_stage      | O_stage          | A(stage's layers, microbatches)    |
| hybrid         | the three combined: TP inside a node, PP across groups of layers, FSDP over the replicas  |

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


def per_stage(cfg: Config, world: int, batch: int, seq: int, tp: int = 1, pp: int = 1, fsdp: bool = False,
              precision: str = "fp32", micro: int | None = None) -> list[dict]:
    """Predicted bytes on one GPU of each pipeline stage, for tp-way tensor x pp-way pipeline x the remaining
    dp = world / (tp x pp) data parallelism (sharded FSDP-style over dp when `fsdp`). The global batch is
    world x batch sequences; each model replica (tp x pp GPUs) processes its dp-th share of it."""
    if min(world, batch, seq, tp, pp) < 1 or world % (tp * pp):
        raise ValueError(f"world {world} must be a positive multiple of tp x pp = {tp * pp}; batch, seq positive")
    bp, bg, bo = PRECISIONS[precision]
    act_bytes = 4 if precision == "fp32" else 2
    n = param_counts(cfg)
    dp = world // (tp * pp)
    tokens = batch * seq * tp * pp                 # per model replica
    micro = micro or (1 if pp == 1 else 2 * pp)
    rows = []
    for stage, (lo, hi) in enumerate(stage_layers(cfg.n_layers, pp)):
        first, last = stage == 0, stage == pp - 1
        # TP splits the blocks' linear layers; the embedding, output head and norms stay whole here.
        block = n["block"] - n["block_linear"] * (1 - 1 / tp)
        whole = (n["embedding"] if first else 0) + (n["output"] + n["final_norm"] if last else 0)
        p = (hi - lo) * block + whole
        acts = tokens * (hi - lo) * block_activation_elems(cfg, tp)   # GPipe keeps every microbatch's
        work, gathered = 0.0, 0.0
        if last:
            acts += tokens * head_activation_elems(cfg)
            work = 2 * tokens * cfg.vocab * act_bytes / micro   # one microbatch's logits and their gradient
        if fsdp and dp > 1:
            # The root unit (embeddings, final norm, output) stays gathered through the step; blocks are
            # gathered one at a time with the next one prefetched.
            gathered = (whole + 2 * block) * bp
            p /= dp
        rows.append(_row(p, bp, bg, bo, acts * act_bytes, work, gathered))
    return rows


def per_rank(cfg: Config, strategy: str, world: int, batch: int, seq: int, precision: str = "fp32",
             micro: int | None = None) -> list[dict]:
    """Predicted bytes on each of `world` ranks under one of STRATEGIES (`batch` sequences per GPU; TP and
    PP process the same global batch, world x batch, on every rank / across the stages)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if strategy == "single":
        world = 1
    layout = {"single": {}, "ddp": {}, "fsdp": {"fsdp": True}, "tp": {"tp": world}, "pp": {"pp": world}}[strategy]
    stages = per_stage(cfg, world, batch, seq, precision=precision, micro=micro, **layout)
    return stages if len(stages) == world else stages * world


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
    """One row per strategy, then every tp x pp x FSDP(dp) split of `world` that mixes two of them: the
    largest rank's prediction (pipeline stages differ)."""
    out = []
    for s in STRATEGIES:
        if (s == "pp" and world > cfg.n_layers) or (s == "tp" and cfg.n_kv_heads % world):
            continue
        worst = max(per_rank(cfg, s, world, batch, seq, precision), key=lambda r: r["total"])
        out.append({"strategy": s, "world": 1 if s == "single" else world, **worst})
    for tp in range(1, world + 1):
        for pp in range(1, world // tp + 1):
            dp = world // (tp * pp)
            if world % (tp * pp) or cfg.n_kv_heads % tp or pp > cfg.n_layers or [tp, pp, dp].count(1) > 1:
                continue
            worst = max(per_stage(cfg, world, batch, seq, tp, pp, fsdp=True, precision=precision), key=lambda r: r["total"])
            name = " x ".join(f"{k}{v}" for k, v in (("tp", tp), ("pp", pp), ("fsdp", dp)) if v > 1)
            out.append({"strategy": name, "world": world, **worst})
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
