"""A decode step eager vs CUDA graph vs torch.compile: where a small-batch step's time goes is launches.

    python -m ch16.decode_graphs --size full --json decode_graphs.json      # 1B config, bf16, GPU
    python -m ch16.decode_graphs --size tiny --device cpu --variants eager,compile

An eager decode step of the 1B model is ~600 kernel launches (16 layers x ~35 small ops, each one a Python call,
a dispatch and a launch); at batch 1-32 most kernels take a few microseconds on the GPU, so the host's launching
sets the pace. A CUDA graph records the step's launches once and replays them with one call; `torch.compile`
(mode="reduce-overhead") fuses the small ops with Inductor and replays its own CUDA graph. Both need a step
whose shapes and addresses never change: a fixed batch, a static KV buffer of `max_seq` slots per sequence, and
the step's positions in a device tensor (not Python ints), so the same recorded kernels serve every step. That is
`StaticKVCache` here, plugged into the engine's `Decoder` through the same `attend` hook the paged cache uses:
each layer writes its new key/value at `pos` and attends over the whole buffer with a mask `key <= pos` (the
price of static shapes: every step reads `max_seq` slots, used or not).

Verified: each variant, fed a prompt token by token, gives the full forward pass's logits at every position; and
greedy generation from there gives the eager tokens (graph replay: identical; compiled: the agreement is
reported, since Inductor's fused kernels round differently in bf16).

Bound (1B, bf16, batch 32, max_seq 576): weights 2.5 GB + KV 32 x 576 x 32 KiB = 0.6 GB per step: ~0.7 ms at
~4.5 TB/s; the eager step takes several times that, the graph should come close to it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from inference.bench import build_model

SIZES = {"tiny": dict(config="tiny", batches=[1, 4], context=32, steps=20, check_len=8, gen=8),
         "small": dict(config="small", batches=[1, 8, 32], context=512, steps=50, check_len=16, gen=16),
         "full": dict(config="1b", batches=[1, 8, 32], context=512, steps=50, check_len=16, gen=16)}
VARIANTS = ("eager", "cuda_graph", "compile")
# max |logit - full forward pass| allowed: the static step attends the same keys in another order of operations
TOL = {torch.float32: 1e-4, torch.bfloat16: 0.1}


class StaticKVCache:
    """KV buffers of fixed shape (layers, batch, kv_heads, max_seq, head_dim); one new token per sequence per step,
    written at `pos` (a device tensor the caller updates in place, so a recorded graph sees the new value)."""

    def __init__(self, cfg, batch: int, max_seq: int, dtype, device):
        shape = (cfg.n_layers, batch, cfg.n_kv_heads, max_seq, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.pos = torch.zeros(batch, dtype=torch.long, device=device)
        self.rows = torch.arange(batch, device=device)
        self.key_pos = torch.arange(max_seq, device=device)

    def attend(self, layer: int, q, k, v):
        """q (batch, heads, 1, hd), k/v (batch, kv_heads, 1, hd)."""
        kl, vl = self.k[layer], self.v[layer]
        kl[self.rows, :, self.pos] = k[:, :, 0]
        vl[self.rows, :, self.pos] = v[:, :, 0]
        b, heads, _, hd = q.shape
        kv_heads = kl.shape[1]
        mask = (self.key_pos <= self.pos[:, None])[:, None, None, :]
        # grouped-query attention: the query heads of one kv head are its query rows (no repeated keys)
        o = F.scaled_dot_product_attention(q.reshape(b, kv_heads, heads // kv_heads, hd), kl, vl, attn_mask=mask)
        return o.reshape(b, heads, 1, hd)


def make_step(model, cache: StaticKVCache, tokens: torch.Tensor):
    """The decode step as a function of nothing: it reads `tokens` (batch, 1) and `cache.pos`, returns logits."""
    def step():
        return model(tokens, cache=cache, positions=cache.pos[:, None, None])[:, 0]
    step.buffers = (cache.k, cache.v, cache.pos, cache.rows, cache.key_pos, tokens)
    return step


def variant_step(name: str, step, device: torch.device):
    """A callable running one decode step the named way (its output tensor may be a static buffer)."""
    if name == "eager":
        return step
    if name == "compile":
        # the buffers the step reads and writes in place keep their addresses: tell Dynamo, so the compiled
        # graph uses them as they are (and Inductor's CUDA graph does not skip itself over mutated inputs)
        for t in (*step.buffers, ):
            torch._dynamo.mark_static_address(t)
        mode = "reduce-overhead" if device.type == "cuda" else None  # reduce-overhead: Inductor + CUDA graphs
        compiled = torch.compile(step, mode=mode, dynamic=False)
        if device.type == "cuda":  # its graph's output buffer is reused by the next replay: keep a copy
            return lambda: compiled().clone()
        return compiled
    # cuda_graph: warm up on a side stream (allocations, cuBLAS workspaces), then record one step
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()

    def replay():
        graph.replay()
        return out
    return replay


@torch.no_grad()
def run_variant(model, name: str, batch: int, s: dict, device, prompt: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """One variant at one batch size, on one static cache (so a compiled or recorded step serves both parts):
    fed `prompt` token by token, then greedy for s["gen"] tokens (returns its logits at the prompt positions and
    the tokens: the caller compares them), then timed over s["steps"] steps at position s["context"]."""
    cache = StaticKVCache(model.cfg, batch, s["context"] + s["steps"], model.output.weight.dtype, device)
    tok = torch.zeros(batch, 1, dtype=torch.long, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    run = variant_step(name, make_step(model, cache, tok), device)
    cache.k.zero_(), cache.v.zero_()  # a graph's warm-up steps wrote into the buffers
    length, logits, made = prompt.shape[1], [], []
    for i in range(length + s["gen"] - 1):
        tok.copy_(prompt[:, i:i + 1] if i < length else made[-1])
        cache.pos.fill_(i)
        out = run()
        if i < length:
            logits.append(out.float())
        if i >= length - 1:
            made.append(out.argmax(-1, keepdim=True))
    sync()
    first_s = time.perf_counter() - t0  # includes compiling / recording
    cache.pos.fill_(s["context"])  # attention reads the whole buffer whatever pos is; pos only sets the mask
    for _ in range(3):
        run()
    sync()
    t0 = time.perf_counter()
    for _ in range(s["steps"]):
        run()
    sync()
    dt = (time.perf_counter() - t0) / s["steps"]
    row = {"variant": name, "batch": batch, "max_seq": s["context"] + s["steps"], "step_ms": dt * 1e3,
           "tokens_per_s": batch / dt, "check_and_first_calls_s": first_s}
    return row, (torch.stack(logits, 1), torch.cat(made, 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="full", choices=list(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", default=None, help=f"comma-separated of {','.join(VARIANTS)} (default: all the device runs)")
    ap.add_argument("--batch", default=None, help="batch sizes, comma-separated (default: the size's)")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    s = SIZES[args.size]
    try:
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda but no CUDA GPU is visible")
        default = [v for v in VARIANTS if device.type == "cuda" or v != "cuda_graph"]
        variants = args.variants.split(",") if args.variants else default
        if not set(variants) <= set(VARIANTS) or "eager" not in variants:
            raise ValueError(f"--variants: a comma-separated subset of {','.join(VARIANTS)} that includes eager")
        if "cuda_graph" in variants and device.type != "cuda":
            raise ValueError("cuda_graph needs --device cuda")
        batches = [int(b) for b in args.batch.split(",")] if args.batch else s["batches"]
        if min(batches) < 1:
            raise ValueError("--batch must be positive")
    except ValueError as e:
        print(f"decode_graphs: {e}", file=sys.stderr)
        return 2
    from harness.device import provenance
    threads = None
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        threads = {"threads": torch.get_num_threads(), "cores": os.cpu_count()}
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build_model(s["config"], args.device, dtype)
    report = {"name": "decode_graphs", "provenance": provenance(device, size=args.size, threads=threads),
              "config": s["config"], "dtype": str(dtype), "tolerance": TOL[dtype], "rows": []}

    def write():  # after every measurement: a step cut short by its timeout still leaves what it measured
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1))

    for b in batches:
        g = torch.Generator().manual_seed(b)
        prompt = torch.randint(0, model.cfg.vocab, (b, s["check_len"]), generator=g).to(device)
        with torch.no_grad():
            full = model(prompt).float()
        eager = None
        for name in variants:
            try:
                row, (logits, tokens) = run_variant(model, name, b, s, device, prompt)
            except Exception as e:  # a variant that cannot run here (a compile error, say) is reported, not fatal
                report["rows"].append({"variant": name, "batch": b, "error": f"{type(e).__name__}: {e}"[:500]})
                print(f"batch {b:>3} {name:>10}: FAILED {type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)
                write()
                continue
            eager = eager or (row, tokens)
            row |= {"max_abs_logit_err_vs_full_forward": (logits - full).abs().max().item(),
                    "logit_scale": full.abs().max().item(),
                    "greedy_token_agreement_vs_eager": (tokens == eager[1]).float().mean().item(),
                    "speedup_vs_eager": eager[0]["step_ms"] / row["step_ms"]}
            report["rows"].append(row)
            print(f"batch {b:>3} {name:>10}: {row['step_ms']:8.3f} ms/step {row['tokens_per_s']:10.1f} tok/s "
                  f"({row['speedup_vs_eager']:.2f}x eager); max |logit - full forward| "
                  f"{row['max_abs_logit_err_vs_full_forward']:.3g} of {row['logit_scale']:.3g}, greedy tokens = "
                  f"eager's: {row['greedy_token_agreement_vs_eager']:.0%} (check + first calls "
                  f"{row['check_and_first_calls_s']:.1f} s)", flush=True)
            write()
    failed = [r for r in report["rows"]
              if "error" in r or r["max_abs_logit_err_vs_full_forward"] > TOL[dtype] * r["logit_scale"]]
    if failed:
        print(f"decode_graphs: {len(failed)} variant run(s) failed or disagree with the full forward pass", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
