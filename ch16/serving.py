"""What Chapter 16's serving comparisons share: sizes, the command line, running engine variants under one load,
judging a goal, and writing JSON (with provenance) and a latency-throughput plot.

Each comparison (batching.py, kv_paging.py, prefix_cache_ttft.py) runs `inference.bench.run_point` for two engine
variants on the same seeded requests and states its goal; a missed goal is reported as missed.
"""
from __future__ import annotations

import argparse
import json
import operator
import os
import sys
from pathlib import Path

import torch

from inference.bench import build_model, parse_variant, run_point, warmup
from inference.loadgen import Workload
from inference.metrics import plot_latency_throughput
from inference.paged_kv import PagedKVCache

# model config, requests, length distribution, KV budget (tokens) and the engine's limits per size
SIZES = {
    "tiny": dict(config="tiny", requests=16, prompt_mean=24, output_mean=8, max_prompt=64, max_output=32,
                 kv_tokens=4096, max_batch=4, token_budget=256, page_size=16),
    "small": dict(config="small", requests=48, prompt_mean=128, output_mean=64, max_prompt=512, max_output=256,
                  kv_tokens=65536, max_batch=32, token_budget=1024, page_size=16),
    "full": dict(config="1b", requests=96, prompt_mean=256, output_mean=128, max_prompt=1024, max_output=512,
                 kv_tokens=131072, max_batch=32, token_budget=2048, page_size=16),
}
OPS = {">=": operator.ge, "<=": operator.le}


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--size", default="full", choices=list(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path, help="where to write the result (JSON)")
    ap.add_argument("--plot", type=Path, help="where to write the latency-throughput plot (PNG)")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    ap.add_argument("--deadline", type=float, default=90.0, help="seconds per point before it is cut short")
    ap.add_argument("--cuda-graphs", action="store_true", help="the engine replays decode-only steps from CUDA graphs")
    return ap


def load_model(args, name: str):
    """The size's model on the device (bf16 on a GPU, fp32 on the CPU), warmed up; None (and a message) if not."""
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"{name}: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return None
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model = build_model(SIZES[args.size]["config"], args.device, dtype)
    warmup(model, model.cfg.vocab)
    return model


def workload(size: str, **overrides) -> Workload:
    s = SIZES[size]
    params = dict(rate=float("inf"), n_requests=s["requests"], prompt_mean=s["prompt_mean"],
                  output_mean=s["output_mean"], max_prompt=s["max_prompt"], max_output=s["max_output"])
    return Workload(**(params | overrides))


def run_series(model, variants: list[str], workloads: list[Workload], args, **engine) -> dict[str, list[dict]]:
    """Each variant at each workload (same seeds): {variant: [point, ...]}."""
    s = {k: SIZES[args.size][k] for k in ("kv_tokens", "max_batch", "token_budget", "page_size")} | engine
    out = {}
    for name in variants:
        flags = parse_variant(name)
        points = []
        for w in workloads:
            max_len = min(model.cfg.max_seq, w.prefix_len + w.max_prompt + w.max_output)
            p = run_point(model, flags, w, max_len=max_len, slo_ttft=SLO["ttft_s"], slo_tpot=SLO["tpot_s"],
                          deadline_s=args.deadline, cuda_graphs=args.cuda_graphs, **s)
            p["workload"] = w.as_dict()
            points.append(p)
            print(f"{name:>18} rate {w.rate:>6}/s: {p['output_tokens_per_s'] or 0:9.1f} out tok/s, TTFT p50 "
                  f"{_ms(p['ttft_s']['p50'])} p99 {_ms(p['ttft_s']['p99'])}, e2e p99 {_ms(p['e2e_s']['p99'])}, "
                  f"peak batch {p['engine']['peak_running']}, finished {p['finished']}/{p['requests']}", flush=True)
        out[name] = points
    return out


SLO = {"ttft_s": 2.0, "tpot_s": 0.1}  # an interactive-chat SLO: first token within 2 s, then >= 10 tokens/s


def _ms(x) -> str:
    return "-" if x is None else f"{x * 1e3:.0f} ms"


def goal(what: str, value: float | None, op: str, target: float, source: str) -> dict:
    met = None if value is None else bool(OPS[op](value, target))
    print(f"goal: {what} {op} {target}: {'-' if value is None else f'{value:.3g}'} -> "
          f"{'met' if met else 'MISSED' if met is False else 'not measured'}")
    return {"what": what, "value": value, "op": op, "target": target, "met": met, "source": source}


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def write(args, name: str, model, series: dict, goals: list[dict], **extra) -> None:
    from harness.device import provenance
    threads = {"threads": torch.get_num_threads(), "cores": os.cpu_count()} if args.device == "cpu" else None
    dtype = model.output.weight.dtype
    report = {"name": name, "provenance": provenance(torch.device(args.device), size=args.size, threads=threads),
              "config": SIZES[args.size]["config"], "dtype": str(dtype), "size": args.size,
              "cuda_graphs": args.cuda_graphs,
              "kv_bytes_per_token": PagedKVCache.bytes_per_token(model.cfg, dtype), "slo": SLO,
              "goals": goals, "series": series, **extra}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot_latency_throughput(series, args.plot, f"{name}: {report['config']} on {args.device}")

