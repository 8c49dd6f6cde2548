"""How long one engine step takes: a decode step at several batch sizes, and the prefill of the same batch.

    python -m inference.step_time --config 1b --device cuda --batch 1,8,32 --graphs --json step_time.json --profile prof.txt
    python -m inference.step_time --config tiny --device cpu --batch 1,4 --context 32 --steps 6

Each batch size gets its own engine: `batch` requests of `--context` random prompt tokens are prefilled in one
step (timed: the prefill), then `--steps` decode steps run (each timed; the median is reported). A step ends with
the one host sync the engine makes (`.tolist()` of the sampled tokens), so wall time per step is the step's time.
The JSON also counts the top-level ATen calls of one decode step's forward pass (torch.profiler): on a GPU each
is at least one kernel launch plus some microseconds of Python and dispatch, which is what a step is made of
when the batch is small. `--graphs` also times the engine with decode-only steps replayed from CUDA graphs
(`inference.graphed_decode`).

Bound: a decode step reads every weight once plus the live KV, (weight bytes + batch * context * KV bytes per
token) / HBM bandwidth: 2.5 GB at 1B in bf16 is ~0.5 ms at ~4.8 TB/s, so a few ms per step means the launches,
not the memory, set the pace; `implied_GB_per_s` in the JSON is those bytes over the measured step time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from inference.bench import build_model, warmup
from inference.generate import new_paged_cache
from inference.model import CONFIGS
from inference.paged_kv import PagedKVCache
from inference.scheduler import Engine, Request


def _engine(model, batch: int, context: int, steps: int, page_size: int, seed: int, cuda_graphs: bool = False) -> Engine:
    g = torch.Generator().manual_seed(seed)
    n_pages = batch * (-(-(context + steps + 1) // page_size))
    graphs = {"cuda_graphs": True} if cuda_graphs else {}  # passed only when asked: older engines lack the option
    engine = Engine(model, new_paged_cache(model, n_pages, page_size), max_batch=batch, token_budget=batch * context,
                    **graphs)
    for i in range(batch):
        engine.add(Request(i, torch.randint(0, model.cfg.vocab, (context,), generator=g).tolist(), steps + 1))
    return engine


def _timed_step(engine: Engine) -> float:
    t0 = time.perf_counter()
    engine.step()  # ends with the engine's host sync
    return time.perf_counter() - t0


def count_forward_ops(engine: Engine) -> int:
    """Top-level ATen calls inside one step's forward pass (nested calls, e.g. linear -> mm, are not counted)."""
    from torch.profiler import ProfilerActivity, profile, record_function
    forward = engine.model.forward

    def labelled(*args, **kwargs):  # the model's own calls, whatever labels the engine has (or had)
        with record_function("step_time.forward"):
            return forward(*args, **kwargs)
    engine.model.forward = labelled  # an instance attribute: nn.Module.__call__ finds it first
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            engine.step()
    finally:
        del engine.model.forward
    n = 0
    for ev in prof.events():
        if not ev.name.startswith("aten::"):
            continue
        p, nested, in_forward = ev.cpu_parent, False, False
        while p is not None:
            nested |= p.name.startswith("aten::")
            in_forward |= p.name == "step_time.forward"
            p = p.cpu_parent
        n += in_forward and not nested
    return n


def profile_table(engine: Engine, steps: int = 3, rows: int = 25) -> str:
    """torch.profiler's tables for a few decode steps: the CPU calls (where the host's time goes) and, on a GPU,
    the kernels (which one dominates the device's time)."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if engine.cache.device.type == "cuda" else [])
    try:
        with profile(activities=acts) as prof:
            for _ in range(steps):
                engine.step()
    except RuntimeError as e:  # no CUPTI: the host's view is still worth having
        acts = [ProfilerActivity.CPU]
        with profile(activities=acts) as prof:
            for _ in range(steps):
                engine.step()
        prof_note = f"(GPU activity unavailable: {str(e).splitlines()[0]})\n"
    else:
        prof_note = ""
    ka = prof.key_averages()
    text = prof_note + f"# {steps} decode steps, by CPU time\n" + ka.table(sort_by="cpu_time_total", row_limit=rows)
    if len(acts) > 1:
        text += "\n# the same steps, by GPU time\n" + ka.table(sort_by="self_device_time_total", row_limit=rows)
    return text


def measure(model, batch: int, context: int, steps: int, page_size: int = 16, repeats: int = 3, seed: int = 0,
            profile_to: Path | None = None, cuda_graphs: bool = False) -> dict:
    prefill = []
    for r in range(repeats):  # a fresh engine each time: the prefill is the first step of a batch
        engine = _engine(model, batch, context, steps + 1, page_size, seed + r, cuda_graphs)
        prefill.append(_timed_step(engine))
    decode = [_timed_step(engine) for _ in range(steps - 4 if profile_to else steps)]
    ops = count_forward_ops(engine)
    if profile_to:
        profile_to.parent.mkdir(parents=True, exist_ok=True)
        profile_to.write_text(profile_table(engine))
    dtype = model.output.weight.dtype
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters()) - model.tok_embeddings.weight.nbytes
    kv_bytes = batch * (context + steps // 2) * PagedKVCache.bytes_per_token(model.cfg, dtype)
    d, p = statistics.median(decode), statistics.median(prefill)
    return {"batch": batch, "context": context, "decode_ms": d * 1e3, "decode_ms_min": min(decode) * 1e3,
            "decode_tokens_per_s": batch / d, "prefill_ms": p * 1e3, "prefill_tokens_per_s": batch * context / p,
            "forward_aten_ops_per_decode_step": ops, "weight_bytes": weight_bytes, "kv_bytes_read": kv_bytes,
            "implied_GB_per_s": (weight_bytes + kv_bytes) / d / 1e9}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny", choices=list(CONFIGS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: bf16 on cuda, fp32 on cpu")
    ap.add_argument("--batch", default="1,8,32", help="decode batch sizes, comma-separated")
    ap.add_argument("--context", type=int, default=512, help="prompt tokens per sequence")
    ap.add_argument("--steps", type=int, default=20, help="decode steps timed per batch size")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    ap.add_argument("--graphs", action="store_true", help="also time decode steps replayed from CUDA graphs")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--profile", type=Path, help="write torch.profiler's tables for the largest batch here")
    args = ap.parse_args(argv)
    try:
        batches = [int(b) for b in args.batch.split(",")]
        if min(batches) < 1 or args.context < 1 or args.steps < 5:
            raise ValueError("--batch and --context must be positive, --steps at least 5")
        if args.context + args.steps + 2 > CONFIGS[args.config].max_seq:
            raise ValueError(f"--context + --steps exceeds max_seq {CONFIGS[args.config].max_seq} of {args.config}")
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda but no CUDA GPU is visible")
    except (ValueError, RuntimeError) as e:
        print(f"step_time: {e}", file=sys.stderr)
        return 2
    from harness.device import provenance
    threads = None
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        threads = {"threads": torch.get_num_threads(), "cores": os.cpu_count()}
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    model = build_model(args.config, args.device, dtype)
    warmup(model, model.cfg.vocab)
    rows = []
    for b in batches:
        row = measure(model, b, args.context, args.steps, profile_to=args.profile if b == max(batches) else None)
        if args.graphs:  # the same engine with decode-only steps replayed from CUDA graphs (eager on a CPU)
            g = measure(model, b, args.context, args.steps, cuda_graphs=True)
            row |= {"graphs_decode_ms": g["decode_ms"], "graphs_decode_tokens_per_s": g["decode_tokens_per_s"],
                    "graphs_speedup": row["decode_ms"] / g["decode_ms"]}
            print(f"{args.config} batch {b:>3}: decode with CUDA graphs {g['decode_ms']:8.2f} ms/step "
                  f"({row['graphs_speedup']:.2f}x eager)", flush=True)
        rows.append(row)
        print(f"{args.config} batch {b:>3}: decode {row['decode_ms']:8.2f} ms/step ({row['decode_tokens_per_s']:9.1f} "
              f"tok/s, {row['forward_aten_ops_per_decode_step']} ATen calls), prefill {b}x{args.context} "
              f"{row['prefill_ms']:8.1f} ms ({row['prefill_tokens_per_s']:9.0f} tok/s)", flush=True)
    report = {"name": "step_time", "provenance": provenance(device, threads=threads), "config": args.config,
              "dtype": str(dtype), "rows": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
