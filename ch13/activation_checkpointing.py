"""Activation checkpointing per decoder block: memory traded for time, both measured.

    python -m ch13.activation_checkpointing --size tiny|small|full [--steps 5] [--json OUT]

Without checkpointing, the forward keeps every block's intermediate tensors (norm outputs, q/k/v, the
attention output, the SwiGLU's gate and up projections) until the backward uses them. With each block
wrapped in `torch.utils.checkpoint.checkpoint(block, ..., use_reentrant=False)`, only the block's input is
kept; the backward runs the block's forward again to rebuild the rest. Peak memory falls to about one
block's activations plus one residual stream per layer; the step pays one extra forward of the blocks.

Bound: the extra forward is ~1/3 more GEMM FLOPs on the blocks (forward 2, backward 4, recompute 2 per
parameter-token), so expect a step ~25-33% slower; activations per block at `full` (4 x 2048 tokens,
width 2048, ffn 8192) are ~10 residual-stream-sized tensors plus 3 of ffn width: ~0.8 GB of bf16 per block,
~13 GB over 16 blocks, against one 32 MiB residual per block when checkpointed.

Reported per variant (`none`, `per_block`): peak allocated memory over a step (`max_memory_allocated`
after a reset; on the CPU not measured), the median step time over `--steps` steps, and the loss and
gradient norm of the first step: they must equal `none`'s (checkpointing recomputes, it does not change
the math; the tolerance covers bf16 and a nondeterministic attention backward).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ch13.train_common import CONFIGS, host_batch, loss_fn, make_model, make_optimizer


class Checkpointed(nn.Module):
    """A block whose activations are recomputed in the backward instead of kept."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x, cos, sin, cache=None, start_pos=0):
        return checkpoint(self.block, x, cos, sin, cache, start_pos, use_reentrant=False)


def with_checkpointing(model):
    model.layers = nn.ModuleList(Checkpointed(b) for b in model.layers)
    return model


def measure(variant: str, size: str, device: torch.device, steps: int) -> dict:
    model = make_model(size, device, seed=0)
    if variant == "per_block":
        with_checkpointing(model)
    opt = make_optimizer(model, "fused")
    gen = torch.Generator().manual_seed(1)
    batch = [t.to(device) for t in host_batch(size, model.cfg.vocab, gen)]
    loss = loss_fn(model, *batch)  # first step: the figures every variant must reproduce
    loss.backward()
    grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.float().norm() for p in model.parameters()])))
    first = {"loss": float(loss.detach()), "grad_norm": grad_norm}
    opt.step()
    opt.zero_grad(set_to_none=True)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss_fn(model, *batch).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    gib = 1 << 30
    return {"variant": variant, **first, "step_ms": statistics.median(times), "step_ms_all": times,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / gib if cuda else None,
            "weights_and_state_gib": base / gib if cuda else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(CONFIGS), default="full")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(2)
    rows = [measure(v, args.size, device, args.steps) for v in ("none", "per_block")]
    ref, ok = rows[0], True
    rtol = 2e-2 if device.type == "cuda" else 1e-5
    for r in rows:
        r["verified"] = all(abs(r[k] - ref[k]) <= rtol * abs(ref[k]) for k in ("loss", "grad_norm"))
        r["step_time_vs_none"] = r["step_ms"] / ref["step_ms"]
        if r["peak_allocated_gib"] is not None:
            r["peak_memory_vs_none"] = r["peak_allocated_gib"] / ref["peak_allocated_gib"]
        ok = ok and r["verified"]
        peak = "-" if r["peak_allocated_gib"] is None else f"{r['peak_allocated_gib']:.2f} GiB"
        print(f"{r['variant']:>10}: peak {peak}, step {r['step_ms']:.1f} ms ({r['step_time_vs_none']:.2f}x), "
              f"loss {r['loss']:.5f}, grad norm {r['grad_norm']:.5f}, verified {r['verified']}")
    if args.json:
        from harness.device import provenance

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"provenance": provenance(device, size=args.size, steps=args.steps),
                                         "rows": rows}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
