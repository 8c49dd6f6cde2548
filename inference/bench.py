"""The serving benchmark: the engine under a seeded Poisson load, at several arrival rates, for one or more engine
variants; TTFT/TPOT/e2e percentiles, tokens/s and goodput per point, as JSON with provenance and a
latency-throughput plot. Chapters 15-19 reuse it.

    python -m inference.bench --config tiny --device cpu --rates 20,80 --requests 24 --json out.json --plot out.png
    python -m inference.bench --config 1b --device cuda --variants continuous,static --rates 4,16,64

A variant is a `+`-joined set of: continuous | static (batching policy), paged | contiguous (KV layout: a
contiguous cache reserves --max-len tokens per sequence up front, a paged one a page at a time), prefix (the
radix-tree prefix cache). Every variant at one rate sees the same requests (same seed).

Bound: a decode step reads all weights once (2 bytes/param in bf16) plus the live KV, so at batch b the output
rate is at most b * HBM bandwidth / (weight bytes + KV bytes); the benchmark shows how close scheduling gets.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from inference.generate import new_paged_cache
from inference.loadgen import Workload, poisson_requests, serve
from inference.metrics import per_request, plot_latency_throughput, summarize
from inference.model import CONFIGS, Decoder
from inference.paged_kv import PagedKVCache
from inference.scheduler import Engine, Request

FLAGS = {"continuous", "static", "paged", "contiguous", "prefix"}


def parse_variant(name: str) -> set[str]:
    flags = set(name.split("+"))
    if not flags <= FLAGS or {"static", "continuous"} <= flags or {"paged", "contiguous"} <= flags:
        raise ValueError(f"bad variant {name!r}: a '+'-joined set of {sorted(FLAGS)}")
    return flags


def build_model(config: str, device: str, dtype: torch.dtype, seed: int = 0) -> Decoder:
    torch.manual_seed(seed)
    with torch.device(device):
        return Decoder(CONFIGS[config]).to(dtype).eval()


def make_engine(model, flags: set[str], kv_tokens: int, page_size: int, max_len: int, max_batch: int,
                token_budget: int, cuda_graphs: bool = False) -> Engine:
    # contiguous: one page of max_len tokens per sequence, reserved whole at its first token
    ps = max_len if "contiguous" in flags else page_size
    cache = new_paged_cache(model, max(1, kv_tokens // ps), ps)
    return Engine(model, cache, max_batch=max_batch, token_budget=token_budget,
                  prefix_cache="prefix" in flags, static="static" in flags, cuda_graphs=cuda_graphs)


def warmup(model, vocab: int) -> None:
    """First-call costs (CUDA context, cuBLAS handles, allocator growth) out of the measured runs."""
    engine = Engine(model, new_paged_cache(model, 16, 16), token_budget=64)
    engine.run([Request(-1 - i, [i % vocab] * (8 + 8 * i), 4) for i in range(2)])
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_point(model, flags: set[str], workload: Workload, *, kv_tokens: int, page_size: int, max_len: int,
              max_batch: int, token_budget: int, slo_ttft: float, slo_tpot: float, deadline_s: float = float("inf"),
              keep_requests: bool = False, cuda_graphs: bool = False) -> dict:
    engine = make_engine(model, flags, kv_tokens, page_size, max_len, max_batch, token_budget, cuda_graphs)
    reqs = poisson_requests(workload, model.cfg.vocab)
    makespan = serve(engine, reqs, deadline_s)
    used = [u / r for u, r in engine.kv_used if r]
    point = {"rate": workload.as_dict()["rate"], **summarize(reqs, makespan, slo_ttft, slo_tpot),
             "engine": {"steps": engine.steps, "peak_running": engine.peak_running,
                        "mean_step_tokens": sum(engine.step_tokens) / max(1, engine.steps),
                        "n_pages": engine.cache.n_pages, "page_size": engine.cache.page_size,
                        "kv_bytes": engine.cache.k.numel() * engine.cache.k.element_size() * 2,
                        "kv_slot_utilization": sum(used) / len(used) if used else None}}
    if keep_requests:
        point["per_request"] = per_request(reqs)
    return point


def _f(x, digits=3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny", choices=list(CONFIGS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: bf16 on cuda, fp32 on cpu")
    ap.add_argument("--variants", default="continuous")
    ap.add_argument("--rates", default="20,80", help="requests/s, comma-separated ('inf': all at t=0)")
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--prompt-mean", type=int, default=32)
    ap.add_argument("--output-mean", type=int, default=16)
    ap.add_argument("--max-prompt", type=int, default=96)
    ap.add_argument("--max-output", type=int, default=64)
    ap.add_argument("--prefix-len", type=int, default=0)
    ap.add_argument("--n-prefixes", type=int, default=1)
    ap.add_argument("--page-size", type=int, default=16)
    ap.add_argument("--kv-tokens", type=int, default=8192, help="KV capacity in tokens (the memory budget)")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--token-budget", type=int, default=512)
    ap.add_argument("--slo-ttft", type=float, default=1.0)
    ap.add_argument("--slo-tpot", type=float, default=0.1)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds per point before it is cut short")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-request", action="store_true")
    ap.add_argument("--cuda-graphs", action="store_true", help="decode-only steps replayed from CUDA graphs")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    try:
        variants = {v: parse_variant(v) for v in args.variants.split(",")}
        rates = [float(r) for r in args.rates.split(",")]
        if any(r <= 0 for r in rates) or args.requests < 1 or args.page_size < 1 or args.kv_tokens < 1:
            raise ValueError("rates, --requests, --page-size and --kv-tokens must be positive")
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda but no CUDA GPU is visible")
    except (ValueError, RuntimeError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    from harness.device import provenance
    threads = None
    if device.type == "cpu":  # a fixed, small pool: on a shared CPU more threads spin (affinity left alone)
        torch.set_num_threads(args.threads)
        threads = {"threads": torch.get_num_threads(), "cores": os.cpu_count()}
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    model = build_model(args.config, args.device, dtype, args.seed)
    cfg = model.cfg
    max_len = min(cfg.max_seq, args.prefix_len + args.max_prompt + args.max_output)
    if max_len > args.kv_tokens:
        print(f"bench: --kv-tokens {args.kv_tokens} cannot hold one request of up to {max_len} tokens", file=sys.stderr)
        return 2
    warmup(model, cfg.vocab)
    report = {"provenance": provenance(device, threads=threads), "config": args.config, "model": asdict(cfg),
              "dtype": str(dtype), "kv_bytes_per_token": PagedKVCache.bytes_per_token(cfg, dtype),
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "series": {}}
    for name, flags in variants.items():
        points = []
        for rate in rates:
            w = Workload(rate=rate, n_requests=args.requests, prompt_mean=args.prompt_mean, output_mean=args.output_mean,
                         max_prompt=args.max_prompt, max_output=args.max_output, prefix_len=args.prefix_len,
                         n_prefixes=args.n_prefixes, seed=args.seed)
            p = run_point(model, flags, w, kv_tokens=args.kv_tokens, page_size=args.page_size, max_len=max_len,
                          max_batch=args.max_batch, token_budget=args.token_budget, slo_ttft=args.slo_ttft,
                          slo_tpot=args.slo_tpot, deadline_s=args.deadline, keep_requests=args.per_request,
                          cuda_graphs=args.cuda_graphs)
            p["workload"] = w.as_dict()
            points.append(p)
            print(f"{name:>22} rate {rate:>7.2f}/s: {_f(p['output_tokens_per_s'], 1)} tok/s  "
                  f"TTFT p50 {_f(p['ttft_s']['p50'])}s p99 {_f(p['ttft_s']['p99'])}s  "
                  f"e2e p99 {_f(p['e2e_s']['p99'])}s  goodput {_f(p['goodput_requests_per_s'], 2)} req/s  "
                  f"peak batch {p['engine']['peak_running']}  finished {p['finished']}/{p['requests']}", flush=True)
        report["series"][name] = points
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot_latency_throughput(report["series"], args.plot, f"{args.config} on {args.device}, {args.requests} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
