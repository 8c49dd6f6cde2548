"""A training step that survives CUDA out-of-memory: free the cache and retry with a smaller micro-batch.

    python -m ch19.oom_retry --size tiny|small|full [--json OUT]

The step takes a global batch and accumulates gradients over micro-batches. If a micro-batch raises
`torch.cuda.OutOfMemoryError`, the step drops every tensor of the failed attempt (the gradients accumulated so
far, the exception's traceback, which pins the frames that hold activations), returns the allocator's cached
blocks to the driver (`torch.cuda.empty_cache()`), halves the micro-batch and runs the whole step again. The
gradient is the same whatever the micro-batch (each micro-batch's loss is weighted by its share of the tokens),
so the retried step equals the one that would have fit: the optimizer steps once, on the full batch.
The micro-batch that worked is kept for the next steps (no OOM each step), and a step that fails at a
micro-batch of 1 re-raises: nothing smaller exists.

On the GPU the CLI caps the process's memory (`torch.cuda.set_per_process_memory_fraction`) so that the full
batch does not fit, and shows the real OOM, the retries and the time they cost. On the CPU (CI) the OOM is
simulated by a forward pre-hook that raises `torch.cuda.OutOfMemoryError` above a micro-batch size (also at
`--size tiny` on a GPU: its few megabytes are below the allocator's block sizes).

Bound: a retry costs the failed attempt's time (up to the OOM) plus `empty_cache`; activation memory scales
with the micro-batch, so halving it halves the activations and leaves weights, gradients and optimizer state.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ch13.train_common import BATCH, CONFIGS, make_model, make_optimizer


class OomRetryStep:
    """step(tokens, targets) -> loss: gradient accumulation over micro-batches, halved on OOM."""

    def __init__(self, model, opt, micro_batch: int):
        self.model, self.opt, self.micro_batch = model, opt, micro_batch
        self.retries: list[dict] = []

    def _attempt(self, tokens, targets) -> torch.Tensor:
        n_tokens = targets.numel()
        total = torch.zeros((), device=tokens.device)
        for i in range(0, tokens.shape[0], self.micro_batch):
            tok, tgt = tokens[i:i + self.micro_batch], targets[i:i + self.micro_batch]
            logits = self.model(tok)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten(), reduction="sum") / n_tokens
            loss.backward()
            total += loss.detach()
        return total

    def step(self, tokens, targets) -> torch.Tensor:
        while True:
            try:
                loss = self._attempt(tokens, targets)
                break
            except torch.cuda.OutOfMemoryError as e:
                if self.micro_batch == 1:
                    raise
                message = str(e).split("\n")[0][:200]
            # Freed here, after the except block: inside it the exception's traceback keeps the failed attempt's
            # frames alive, and with them its activations and autograd graph.
            failed = self.micro_batch
            self.opt.zero_grad(set_to_none=True)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.micro_batch = max(1, failed // 2)
            self.retries.append({"failed_micro_batch": failed, "retry_micro_batch": self.micro_batch,
                                 "error": message})
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss


def oom_above(model, limit: int):
    """A forward pre-hook that raises torch.cuda.OutOfMemoryError for a batch over `limit` rows (CPU tests)."""
    def hook(_module, inputs):
        if inputs[0].shape[0] > limit:
            raise torch.cuda.OutOfMemoryError(f"simulated: micro-batch {inputs[0].shape[0]} > {limit}")
    return model.register_forward_pre_hook(hook)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="full", choices=list(CONFIGS))
    ap.add_argument("--batch", type=int, default=None, help="global batch (default: 4x the size's batch)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.steps < 1 or (args.batch is not None and args.batch < 1):
        ap.error("--steps and --batch must be positive")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    b, t = BATCH[args.size]
    batch = args.batch or 4 * b
    model = make_model(args.size, device, seed=0)
    opt = make_optimizer(model, "fused" if device.type == "cuda" else "foreach")
    gen = torch.Generator(device=device).manual_seed(0)
    seq = torch.randint(0, model.cfg.vocab, (batch, t + 1), device=device, generator=gen)
    tokens, targets = seq[:, :-1], seq[:, 1:]
    cap = None
    real_oom = device.type == "cuda" and args.size != "tiny"  # tiny: a few MB, below the allocator's 2 MB blocks
    if real_oom:
        # Measure a step at micro-batch 1 (the second one: the first creates the Adam moments), then cap memory
        # at the states plus a quarter of the full batch's gradients-and-activations: the full batch cannot fit,
        # two halvings later it does.
        probe = OomRetryStep(model, opt, 1)
        probe.step(tokens[:1], targets[:1])
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        states = torch.cuda.memory_allocated()
        probe.step(tokens[:1], targets[:1])
        per_row = torch.cuda.max_memory_allocated() - states
        cap = states + per_row * batch / 4
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(device).total_memory)
        print(f"states {states / 2**30:.2f} GiB, a micro-batch of 1 adds up to {per_row / 2**30:.2f} GiB "
              f"(gradients and activations): memory capped at {cap / 2**30:.2f} GiB")
        hook = None
    else:
        hook = oom_above(model, batch // 4)
    runner = OomRetryStep(model, opt, batch)
    rows = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        loss = float(runner.step(tokens, targets))
        if device.type == "cuda":
            torch.cuda.synchronize()
        rows.append({"step": i, "loss": loss, "seconds": time.perf_counter() - t0, "micro_batch": runner.micro_batch})
        print(f"step {i}: loss {loss:.4f}, micro-batch {runner.micro_batch}, {rows[-1]['seconds']:.3f} s")
    if hook:
        hook.remove()
    for r in runner.retries:
        print(f"OOM at micro-batch {r['failed_micro_batch']} -> retried at {r['retry_micro_batch']}: {r['error']}")
    ok = bool(runner.retries) and runner.micro_batch < batch and all(r["loss"] == r["loss"] for r in rows)
    if args.json:
        from harness.device import provenance
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "name": "oom_retry", "provenance": provenance(device, size=args.size, simulated_oom=not real_oom),
            "global_batch": batch, "seq": t, "memory_cap_bytes": cap, "retries": runner.retries, "steps": rows,
            "survived": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
