"""KV page size: memory utilization against attention step time, page sizes 8..256.

    python -m ch18.kv_page_sweep --size full --json kv_page_sweep.json --plot kv_page_sweep.png

A page is the unit the cache grows by, so a sequence of L tokens wastes on average half a page at its tail
(internal fragmentation): utilization = tokens held / slots reserved falls as pages grow. Small pages cost the
attention kernel instead: more block-table entries to read and, in a kernel that loads a page at a time, shorter
contiguous runs. Three views per page size:

1. utilization at the loadgen's length distribution (log-normal prompts + outputs, the chat-trace shape): tokens
   / reserved slots when every sequence is complete, and how many such sequences a fixed KV budget holds;
2. one decode step's attention over paged KV (`ch18.paged_decode` shapes: one 8B layer, 32 sequences of
   4096..8192 tokens at full): the Triton kernel that reads pages in place, and the engine's gather + SDPA;
3. the engine itself (`inference/`, continuous batching) under the same requests at one KV budget: peak
   concurrent sequences, measured slot utilization, output tokens/s.

Bound: view 2 reads sum(lengths) x 4 KiB of KV (~0.8 GB at full, ~0.19 ms at 4.2 TB/s) whatever the page size;
our kernel loads by token slot (each token's 256-byte head row is contiguous at any page size), so it should stay
flat down to small pages, where a page-granular kernel would not. Utilization at mean length ~Lbar is about
Lbar / (Lbar + page/2): ~99% at 8 tokens, ~75% at 256 for Lbar = 384.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from ch18 import paged_decode
from ch18.flex_masks import time_fn
from inference.loadgen import Workload, poisson_requests

PAGE_SIZES = (8, 16, 32, 64, 128, 256)
# workload (loadgen) and engine per size: model config, requests, prompt/output means and caps, KV budget (tokens)
SIZES = {"tiny": dict(config="tiny", requests=12, prompt_mean=24, output_mean=8, max_prompt=64, max_output=32,
                      kv_tokens=2048, max_batch=64, token_budget=256),
         "small": dict(config="small", requests=48, prompt_mean=256, output_mean=128, max_prompt=1024, max_output=512,
                       kv_tokens=16384, max_batch=64, token_budget=1024),
         "full": dict(config="1b", requests=48, prompt_mean=256, output_mean=128, max_prompt=1024, max_output=256,
                      kv_tokens=12288, max_batch=64, token_budget=2048)}


def utilization(lengths: list[int], page: int, kv_tokens: int) -> dict:
    reserved = [-(-n // page) * page for n in lengths]
    mean_reserved = sum(reserved) / len(reserved)
    return {"utilization": sum(lengths) / sum(reserved), "mean_reserved_tokens": mean_reserved,
            "sequences_in_budget": int(kv_tokens // mean_reserved)}


def attention_times(size: str, page: int, device: torch.device, seed: int, budget_s: float, triton_ok: bool) -> dict:
    """One decode step's attention at this page size: Triton in place, and gather + SDPA."""
    inputs = paged_decode.setup(size, device, seed, page_size=page)
    want = paged_decode.gather_then_sdpa(inputs).float()
    out = {"kv_bytes": paged_decode.kv_bytes(inputs)}
    fns = {"gather_sdpa": lambda: paged_decode.gather_then_sdpa(inputs)}
    if triton_ok:
        fns["triton_paged"] = lambda: paged_decode.triton_paged(inputs)
    for name, fn in fns.items():
        err = float((fn().float() - want).abs().max())
        if err > 2e-2:
            out[name] = {"status": "wrong", "max_abs_err": err}
            continue
        t = time_fn(fn, device, budget_s)
        out[name] = {"status": "ok", "time_ms": t * 1e3, "gbps": out["kv_bytes"] / t / 1e9, "max_abs_err": err}
    return out


def engine_point(model, w: Workload, page: int, s: dict) -> dict:
    from inference.bench import run_point
    max_len = min(model.cfg.max_seq, w.max_prompt + w.max_output)
    p = run_point(model, {"continuous", "paged"}, w, kv_tokens=max(s["kv_tokens"], max_len + page), page_size=page,
                  max_len=max_len, max_batch=s["max_batch"], token_budget=s["token_budget"], slo_ttft=2.0,
                  slo_tpot=0.1, deadline_s=60.0)
    e = p["engine"]
    return {"peak_running": e["peak_running"], "kv_slot_utilization": e["kv_slot_utilization"],
            "output_tokens_per_s": p["output_tokens_per_s"], "preemptions": p["preemptions"],
            "finished": p["finished"], "requests": p["requests"], "steps": e["steps"]}


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = report["pages"]
    pages = [r["page_size"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(pages, [100 * r["workload"]["utilization"] for r in rows], "o-", label="workload, complete")
    axes[0].plot(pages, [100 * (r["engine"]["kv_slot_utilization"] or 0) if r.get("engine") else None for r in rows],
                 "s--", label="engine, per step")
    axes[0].set_ylabel("KV slot utilization (%)")
    for name in ("triton_paged", "gather_sdpa"):
        axes[1].plot(pages, [r["attention"].get(name, {}).get("time_ms") for r in rows], "o-", label=name)
    axes[1].set_ylabel("decode attention step (ms)")
    if all(r.get("engine") for r in rows):
        axes[2].plot(pages, [r["engine"]["output_tokens_per_s"] for r in rows], "o-", label="output tokens/s")
        axes[2].plot(pages, [r["engine"]["peak_running"] for r in rows], "s--", label="peak sequences")
    axes[2].set_ylabel("engine")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("page size (tokens)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    dev = report["provenance"]["device"].get("name", "?")
    fig.suptitle(f"KV page size sweep ({report['size']}) on {dev}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="full", choices=list(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--pages", default=",".join(map(str, PAGE_SIZES)), help="page sizes, comma-separated")
    ap.add_argument("--no-engine", action="store_true", help="skip view 3 (the engine under load)")
    ap.add_argument("--time-per-impl", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    try:
        pages = [int(p) for p in args.pages.split(",")]
        if any(p < 1 for p in pages):
            raise ValueError
    except ValueError:
        print(f"kv_page_sweep: --pages must be positive integers, got {args.pages!r}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("kv_page_sweep: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    threads = None
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        threads = {"threads": torch.get_num_threads(), "cores": os.cpu_count()}
    s = SIZES[args.size]
    w = Workload(rate=float("inf"), n_requests=s["requests"], prompt_mean=s["prompt_mean"], output_mean=s["output_mean"],
                 max_prompt=s["max_prompt"], max_output=s["max_output"], seed=args.seed)
    lengths = [len(r.prompt) + r.max_new_tokens for r in poisson_requests(w, vocab=1000)]
    model = None
    if not args.no_engine:
        from ch16.serving import load_model
        model = load_model(argparse.Namespace(device=args.device, size=args.size, threads=args.threads), "kv_page_sweep")
        if model is None:
            return 2
    triton_ok = device.type == "cuda"  # the interpreter's timings say nothing about a kernel's speed
    from harness.device import provenance
    report = {"name": "kv_page_sweep", "provenance": provenance(device, size=args.size, threads=threads),
              "size": args.size, "workload": w.as_dict(), "mean_length": sum(lengths) / len(lengths),
              "kv_budget_tokens": s["kv_tokens"], "pages": []}
    for page in pages:
        row = {"page_size": page, "workload": utilization(lengths, page, s["kv_tokens"]),
               "attention": attention_times(args.size, page, device, args.seed, args.time_per_impl, triton_ok)}
        if model is not None:
            row["engine"] = engine_point(model, w, page, s)
        att = row["attention"]
        print(f"page {page:>4}: utilization {row['workload']['utilization']:.1%}, "
              + ", ".join(f"{n} {a['time_ms']:.3f} ms" for n, a in att.items() if isinstance(a, dict) and "time_ms" in a)
              + (f", engine {row['engine']['output_tokens_per_s']:.1f} tok/s peak {row['engine']['peak_running']}"
                 if model is not None else ""), flush=True)
        report["pages"].append(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(report, args.plot)
    return 0 if all(a.get("status") != "wrong" for r in report["pages"] for a in r["attention"].values()
                    if isinstance(a, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
