"""One training step of a Llama decoder under DDP, FSDP2, tensor parallelism and a pipeline, on N ranks.

    python -m ch4.parallel_strategies                      # 2 CPU ranks over gloo, tiny decoder
    python -m ch4.parallel_strategies --backend nccl --device cuda --world 2 --size full --trace DIR --json OUT

Every strategy trains the same `inference.model.Decoder` (same seed, same weights) with AdamW on the same
synthetic token batches (learnable sequences, so the loss falls), the global batch being world x batch
sequences:

- `single`: one rank, `batch` sequences: the 1-GPU baseline of the scaling efficiency (same per-GPU batch).
- `ddp`: DistributedDataParallel; each rank its `batch` sequences; gradients all-reduced in 25 MB buckets
  while backward goes on. `--trace DIR` profiles a few steps on rank 0 and reads from the trace how much of
  the NCCL time ran under computation kernels (ch4/comm_overlap.py).
- `fsdp`: `fully_shard` on each block, then on the root (FSDP2): parameters, gradients and AdamW's states
  sharded N ways; each block's weights all-gathered just before use, gradients reduce-scattered.
  `fsdp_bf16`: the same with MixedPrecisionPolicy(bf16 compute, fp32 reduction).
- `tp`: `parallelize_module` with ColwiseParallel on wq/wk/wv/w1/w3 and RowwiseParallel on wo/w2 (Megatron's
  split: one all-reduce after attention and one after the MLP, forward and backward); each rank holds
  n_heads/N query heads. Every rank processes the whole global batch.
- `pp`: the blocks cut into N contiguous stages (`torch.distributed.pipelining.PipelineStage`), the global
  batch split into 2N microbatches, scheduled with ScheduleGPipe.

Correctness: rank 0 first trains the unsharded model on the global batch for the same steps. Each strategy's
loss at step 1 (same weights, same batch) must match it within `LOSS_TOL[...]["first"]` (relative), and every
later step within `["later"]`: fp32 1e-4 / 1e-3; TF32 matmuls (CUDA) 2e-3 / 2e-2; bf16 compute 2e-2 / 5e-2.
A strategy that does not match reports no speedup.

Reported per strategy: median step time after warm-up (CUDA-synchronised, a barrier before each step),
peak memory per GPU (max_memory_allocated, per rank), tokens/s over the global batch, scaling efficiency
= tokens/s / (N x the single rank's tokens/s), and ch4/memory_model.py's prediction beside the measured peak.
Bound: a step costs 6 x params x tokens FLOPs (plus attention) per GPU at the matmul ceiling, plus the
communication not hidden: DDP 2(N-1)/N x grad bytes of all-reduce per step; FSDP 3 x (N-1)/N x param bytes
(two all-gathers, one reduce-scatter); TP 4 all-reduces of tokens x dim x 4 B per block; PP the bubble
(N-1)/(microbatches+N-1) of the step.

Not a harness example (the computation spans processes); it times and verifies itself. Each run has a
deadline (--timeout): on expiry every rank is killed and the command exits 1; bad input exits 2.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from inference.model import CONFIGS, Config

STRATEGIES = ("ddp", "fsdp", "fsdp_bf16", "tp", "pp")
# ~200M parameters: large enough for communication to matter, small enough for a step in ~0.1 s on an H200.
GPU_CONFIG = Config(vocab=32000, dim=1024, n_layers=12, n_heads=16, n_kv_heads=8, ffn_dim=2816, max_seq=1024)
SIZES = {"tiny": dict(config="tiny", batch=2, seq=16, warmup=1, steps=2, trace_steps=1),
         "small": dict(config="small", batch=4, seq=512, warmup=2, steps=5, trace_steps=3),
         "full": dict(config="gpu", batch=8, seq=1024, warmup=3, steps=10, trace_steps=3)}
LOSS_TOL = {"fp32": {"first": 1e-4, "later": 1e-3}, "tf32": {"first": 2e-3, "later": 2e-2},
            "bf16": {"first": 2e-2, "later": 5e-2}}
LR = 3e-3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"parallel_strategies: {message}", file=sys.stderr)
        sys.exit(2)


def config_of(name: str) -> Config:
    return GPU_CONFIG if name == "gpu" else CONFIGS[name]


def batches(cfg: Config, n_seq: int, seq: int, steps: int, seed: int) -> list:
    """`steps` global batches of learnable sequences: each token is (5 x previous + 3) mod vocab."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        tok = torch.empty(n_seq, seq + 1, dtype=torch.long)
        tok[:, 0] = torch.randint(cfg.vocab, (n_seq,), generator=g)
        for i in range(seq):
            tok[:, i + 1] = (tok[:, i] * 5 + 3) % cfg.vocab
        out.append(tok)
    return out


_MASTERS: dict = {}


def new_model(cfg: Config, seed: int, device):
    """A fresh copy of the seeded weights (the same on every rank); initialised once per process on the CPU."""
    import copy

    from inference.model import Decoder

    if (cfg, seed) not in _MASTERS:
        model = Decoder(cfg)
        model.reset_parameters(seed)
        _MASTERS[(cfg, seed)] = model
    return copy.deepcopy(_MASTERS[(cfg, seed)]).to(device)


def loss_of(logits, targets):
    import torch.nn.functional as F

    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def skip_reason(strategy: str, cfg: Config, world: int, batch: int, device_type: str) -> str | None:
    if strategy == "tp" and (cfg.n_heads % world or cfg.n_kv_heads % world or cfg.ffn_dim % world):
        return f"tp needs n_heads, n_kv_heads and ffn_dim divisible by {world}"
    if strategy == "pp" and world > cfg.n_layers:
        return f"{world} pipeline stages need {world} blocks, the model has {cfg.n_layers}"
    if strategy == "pp" and world == 1:
        return "a pipeline needs 2+ ranks"
    return None


class PipelineStageModule(torch.nn.Module):
    """Blocks [lo, hi) of the decoder; stage 0 adds the embedding, the last stage the norm and the output."""

    def __init__(self, model, lo: int, hi: int, first: bool, last: bool):
        super().__init__()
        self.tok_embeddings = model.tok_embeddings if first else None
        self.layers = torch.nn.ModuleList(model.layers[lo:hi])
        self.norm = model.norm if last else None
        self.output = model.output if last else None
        self.register_buffer("rope_cos", model.rope_cos, persistent=False)
        self.register_buffer("rope_sin", model.rope_sin, persistent=False)

    def forward(self, x):
        t = x.shape[1]
        if self.tok_embeddings is not None:
            x = self.tok_embeddings(x)
        for layer in self.layers:
            x = layer(x, self.rope_cos[:t], self.rope_sin[:t])
        return self.output(self.norm(x)) if self.output is not None else x


def build(strategy: str, cfg: Config, rank: int, world: int, device, seed: int, micro: int):
    """(model, step): step(tokens of the global batch) -> this rank's loss of the step (a tensor);
    step.global_losses(list of them) -> the global mean losses, one collective for all steps."""
    import torch.distributed as dist

    # FSDP and the pipeline build on the CPU, so the GPU never holds more than its shard or stage.
    model = new_model(cfg, seed, "cpu" if strategy in ("fsdp", "fsdp_bf16", "pp") else device)
    batch_slice = None
    if strategy in ("ddp", "fsdp", "fsdp_bf16"):
        batch_slice = lambda tok: tok.chunk(world)[rank]  # noqa: E731  each rank its own sequences
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True)
    elif strategy in ("fsdp", "fsdp_bf16"):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mesh = init_device_mesh(device.type, (world,))
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if strategy == "fsdp_bf16" \
            else MixedPrecisionPolicy()
        for block in model.layers:
            fully_shard(block, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)   # moves the shards (and buffers) to the mesh's device
    elif strategy == "tp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
        mesh = init_device_mesh(device.type, (world,))
        plan = {"attention.wq": ColwiseParallel(), "attention.wk": ColwiseParallel(), "attention.wv": ColwiseParallel(),
                "attention.wo": RowwiseParallel(), "feed_forward.w1": ColwiseParallel(),
                "feed_forward.w3": ColwiseParallel(), "feed_forward.w2": RowwiseParallel()}
        for block in model.layers:
            parallelize_module(block, mesh, plan)
    elif strategy == "pp":
        from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

        from ch4.memory_model import stage_layers
        lo, hi = stage_layers(cfg.n_layers, world)[rank]
        model = PipelineStageModule(model, lo, hi, rank == 0, rank == world - 1).to(device)
        stage = PipelineStage(model, rank, world, device)
        schedule = ScheduleGPipe(stage, n_microbatches=micro, loss_fn=loss_of)  # mean per microbatch, grads / micro
    # Multi-tensor AdamW; under TP the blocks' weights are DTensors and the embedding and norms plain tensors,
    # which one foreach call cannot mix: two parameter groups.
    from torch.distributed.tensor import DTensor
    params = list(model.parameters())
    groups = [g for g in ([p for p in params if isinstance(p, DTensor)], [p for p in params if not isinstance(p, DTensor)])
              if g]
    opt = torch.optim.AdamW([{"params": g} for g in groups], lr=LR, foreach=True)
    last = world - 1

    def grad_norm():
        """The global gradient norm: sharded pieces summed over ranks, replicated ones counted once."""
        total = torch.zeros((), device=device)
        for p in model.parameters():
            g = p.grad
            if g is None:
                continue
            sharded = strategy == "pp" or (isinstance(g, DTensor) and any(pl.is_shard() for pl in g.placements))
            local = g.to_local() if isinstance(g, DTensor) else g
            total += local.float().pow(2).sum() / (1 if sharded else world)
        if world > 1:
            dist.all_reduce(total)
        return total.sqrt()

    def step(tok, check: bool = False):
        """One optimizer step; returns the global mean loss (and, with check, the gradient norm first)."""
        x, y = tok[:, :-1], tok[:, 1:]
        if strategy == "pp":
            losses = []
            if rank == 0:
                schedule.step(x)
            elif rank == last:
                schedule.step(target=y, losses=losses)
            else:
                schedule.step()
            loss = torch.stack(losses).mean().detach() if rank == last else torch.zeros((), device=device)
        else:
            if batch_slice is not None:
                x, y = batch_slice(x), batch_slice(y)
            loss = loss_of(model(x), y)
            loss.backward()
            loss = loss.detach()
        norm = grad_norm() if check else None
        opt.step()
        opt.zero_grad(set_to_none=True)
        return (loss, norm) if check else loss

    def global_losses(losses: list) -> list[float]:
        # After the timed steps, so that no per-step collective but the strategy's own is timed or traced.
        t = torch.stack(losses)
        if strategy == "pp":
            dist.broadcast(t, src=last)       # the last stage computed the loss
        elif batch_slice is not None:
            dist.all_reduce(t)                # data parallel: the mean over the ranks' equal shares
            t /= world
        return t.tolist()

    step.global_losses = global_losses
    return model, step


def run_steps(step, data, warmup: int, device, barrier=None, trace_to: str | None = None, trace_steps: int = 0):
    """Step times after warm-up (ms), losses of every step, peak memory (bytes, CUDA) and the profiled trace."""
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    loss, norm = step(data[0], check=True)   # a warm-up step (warmup >= 1): the gradient norm is not timed
    times, losses = [], [loss]
    for i, tok in enumerate(data[1:], start=1):
        if barrier:
            barrier()
        sync()
        t0 = time.perf_counter()
        losses.append(step(tok))
        sync()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    losses = step.global_losses(losses)
    if trace_steps:
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
        prof = profile(activities=acts) if trace_to else None
        if prof:
            prof.__enter__()
        for tok in data[-trace_steps:]:
            step(tok)
        sync()
        if prof:
            prof.__exit__(None, None, None)
            prof.export_chrome_trace(trace_to)
    return {"times_ms": times, "losses": losses, "grad_norm": float(norm), "peak_bytes": peak}


def _free(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _rank_main(rank: int, world: int, backend: str, device_type: str, tmp: str, opts: dict):
    import torch.distributed as dist

    from ch4 import launch

    t_start = time.monotonic()

    def log(what: str):   # progress on stderr, with --verbose (on the GPU node: where the time goes)
        if opts["verbose"]:
            print(f"parallel_strategies: rank {rank} +{time.monotonic() - t_start:.1f} s: {what}", file=sys.stderr, flush=True)

    device = launch.init(rank, world, backend, device_type, os.path.join(tmp, "store"), opts["pg_timeout"])
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high" if opts["tf32"] else "highest")
    cfg, size = config_of(opts["config"]), opts
    n_steps = size["warmup"] + size["steps"]
    data = [t.to(device) for t in batches(cfg, world * size["batch"], size["seq"], n_steps, opts["seed"] + 1)]
    results: dict = {"strategies": {}}
    out = Path(tmp) / "result.json"
    try:
        _free(device)
        log("started")
        if rank == 0:
            # The unsharded model on the whole global batch: the losses every strategy must reproduce.
            model, step = build("single", cfg, 0, 1, device, opts["seed"], 1)
            r = run_steps(step, data, size["warmup"], device)
            results["reference_losses"], results["reference_grad_norm"] = r["losses"], r["grad_norm"]
            del model, step
            _free(device)
            log("reference done")
        if rank == world - 1:
            # The 1-GPU baseline, the same per-GPU batch as each data-parallel rank (on the last GPU, meanwhile).
            model, step = build("single", cfg, 0, 1, device, opts["seed"], 1)
            r = run_steps(step, [t[:size["batch"]] for t in data], size["warmup"], device)
            results["strategies"]["single"] = {**r, "world": 1, "peak_bytes_per_rank": [r["peak_bytes"]]}
            del model, step
            _free(device)
        if world > 1:
            gathered = [None] * world
            dist.all_gather_object(gathered, results["strategies"].get("single"))
            results["strategies"]["single"] = gathered[-1]
        if rank == 0:
            out.write_text(json.dumps(results))
        for strategy in opts["strategies"]:
            reason = skip_reason(strategy, cfg, world, size["batch"], device.type)
            if reason:
                results["strategies"][strategy] = {"skipped": reason}
                if rank == 0:
                    out.write_text(json.dumps(results))
                continue
            micro = 2 * world if (world * size["batch"]) % (2 * world) == 0 else world
            log(strategy)
            model, step = build(strategy, cfg, rank, world, device, opts["seed"], micro)
            trace = None
            if opts["trace_dir"] and strategy in ("ddp", "fsdp") and rank == 0:
                trace = os.path.join(opts["trace_dir"], f"{strategy}_rank0_trace.json")
            r = run_steps(step, data, size["warmup"], device, barrier=dist.barrier, trace_to=trace,
                          trace_steps=size["trace_steps"] if opts["trace_dir"] and strategy in ("ddp", "fsdp") else 0)
            peaks = [None] * world
            dist.all_gather_object(peaks, r["peak_bytes"])
            del model, step
            _free(device)
            results["strategies"][strategy] = {**r, "world": world, "peak_bytes_per_rank": peaks, "micro": micro,
                                               "trace": trace}
            if rank == 0:
                out.write_text(json.dumps(results))   # partial results survive a later strategy's failure
    finally:
        dist.destroy_process_group()
    log("done")
    # Done and written: leave without the interpreter's slow teardown of torch's modules and threads.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run(world: int, backend: str, device: str, size: str, strategies=STRATEGIES, timeout: float = 170,
        trace_dir: str | None = None, tf32: bool = True, seed: int = 0, verbose: bool = False) -> dict:
    """Spawn the ranks, collect rank 0's results, check every loss against the reference, derive the figures."""
    from ch4 import launch

    opts = dict(SIZES[size], strategies=list(strategies), trace_dir=trace_dir, tf32=tf32, seed=seed,
                pg_timeout=max(30.0, timeout), verbose=verbose)
    if trace_dir:
        Path(trace_dir).mkdir(parents=True, exist_ok=True)
    error = None
    with tempfile.TemporaryDirectory(prefix="parallel_strategies_") as tmp:
        try:
            launch.spawn(_rank_main, (world, backend, device, tmp, opts), world, timeout, backend)
        except Exception as exc:  # keep what finished; the failure is reported
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        path = Path(tmp) / "result.json"
        raw = json.loads(path.read_text()) if path.exists() else {"strategies": {}}
    from ch4.strategies_report import summarise

    return summarise(raw, world, backend, device, size, opts, error)


def main(argv: list[str] | None = None) -> int:
    from ch4.strategies_report import render
    from harness.report import emit

    parser = _Parser(prog="python -m ch4.parallel_strategies", description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated subset of " + ",".join(STRATEGIES))
    parser.add_argument("--no-tf32", action="store_true", help="full fp32 matmuls on CUDA")
    parser.add_argument("--trace", metavar="DIR", help="profile DDP and FSDP steps on rank 0, traces into DIR")
    parser.add_argument("--timeout", type=float, default=170, help="seconds before every rank is killed")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE")
    parser.add_argument("--verbose", action="store_true", help="each rank's progress on stderr")
    args = parser.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not strategies:
        parser.error(f"--strategies: unknown {bad or 'empty'}; expected some of {','.join(STRATEGIES)}")
    if args.world < 1 or args.timeout <= 0:
        parser.error("--world and --timeout must be positive")
    if args.backend == "nccl" and args.device != "cuda":
        parser.error("--backend nccl needs --device cuda")
    if args.device == "cuda":
        if torch.cuda.device_count() < args.world:
            parser.error(f"--world {args.world} on cuda needs {args.world} GPUs, {torch.cuda.device_count()} visible")
    report = run(args.world, args.backend, args.device, args.size, strategies, args.timeout, args.trace, not args.no_tf32,
                 verbose=args.verbose)
    from harness.device import provenance
    report["provenance"] = provenance(torch.device(args.device), size=args.size)
    try:
        emit(report, render, args.json)
    except OSError as exc:
        parser.error(f"cannot write {args.json}: {exc}")
    return 0 if report["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
