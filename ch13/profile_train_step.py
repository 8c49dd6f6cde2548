"""Profiling a training step, and the fixes the profile points at, one at a time.

    python -m ch13.profile_train_step --size tiny|small|full [--json OUT] [--trace-dir DIR] [--steps N]

Three variants of the same step (decoder, synthetic tokens, AdamW; `train_common.py`), each cumulative:
- `baseline`: tokens made on the host and copied from pageable memory, the loss read with `.item()` every
  step (a logging line), AdamW as a for-loop over parameters (`foreach=False`);
- `no_host_sync`: the batch staged in pinned memory and copied asynchronously, the loss kept on the device
  (read once at the end): the host no longer waits for the GPU each step, so it queues the next step's
  kernels while the GPU works;
- `fused_adamw`: AdamW as one fused kernel per parameter group (`fused=True`) instead of about ten small
  kernels per parameter: the optimizer phase's kernel count and launch cost fall to almost nothing.

For each: a torch.profiler trace of `--steps` steps (gzipped Chrome trace in --trace-dir), the summary our
code computes from it (`trace_summary.py`: time per phase, top kernels, GPU idle fraction), and the step
time measured without the profiler (median of 3 timed runs of `--steps` steps, one sync each).
Verification: every variant trains from the same weights on the same batches; the per-step losses and
the final weights must match the baseline's within the dtype's tolerance (bf16 on a GPU: the AdamW
implementations round differently), or the variant is marked not verified.

Bound: at `full` (1.1 B parameters, 8192 tokens) a step is ~54 TFLOP (about 0.1 s at ~600 TFLOP/s);
AdamW reads and writes ~16 bytes per parameter in bf16 (param, grad, two moments): ~18 GB, ~4 ms at
4.5 TB/s. The for-loop AdamW's ~1700 launches per step (~150 parameters x ~11 kernels) cost more than that.
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ch13 import trace_summary
from ch13.train_common import BATCH, CONFIGS, PHASES, host_batch, make_model, make_optimizer, train_step

VARIANTS = {  # name: (AdamW implementation, pinned async copy, .item() per step)
    "baseline": ("for_loop", False, True),
    "no_host_sync": ("for_loop", True, False),
    "fused_adamw": ("fused", True, False),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_steps(variant: str, size: str, device: torch.device, steps: int, seed: int = 0, model=None, opt=None):
    """`steps` training steps on seeded batches; returns (model, optimizer, per-step losses as floats)."""
    impl, pinned, sync_loss = VARIANTS[variant]
    if model is None:
        model = make_model(size, device, seed)
        opt = make_optimizer(model, impl)
    gen = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in range(steps):
        losses.append(train_step(model, opt, *host_batch(size, model.cfg.vocab, gen), device,
                                 pinned=pinned, sync_loss=sync_loss))
    sync(device)
    return model, opt, [float(v) for v in losses]  # tensors are read here, once, after the steps


def verify(size: str, device: torch.device, steps: int) -> dict:
    """Losses and final weights of every variant against the baseline's, from the same start."""
    rtol = 2e-2 if device.type == "cuda" else 1e-4  # bf16 AdamW: implementations round differently
    ref_model, _, ref_losses = run_steps("baseline", size, device, steps)
    ref_w = torch.cat([p.detach().float().flatten() for p in ref_model.parameters()])
    del ref_model
    out = {"baseline": {"verified": True, "losses": ref_losses}}
    for name in VARIANTS:
        if name == "baseline":
            continue
        model, _, losses = run_steps(name, size, device, steps)
        w = torch.cat([p.detach().float().flatten() for p in model.parameters()])
        loss_err = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(losses, ref_losses, strict=True))
        w_err = float((w - ref_w).norm() / ref_w.norm())
        out[name] = {"verified": loss_err <= rtol and w_err <= rtol, "losses": losses,
                     "max_loss_rel_err": loss_err, "weights_rel_l2_err": w_err, "rtol": rtol}
        del model
    return out


def profile_variant(variant: str, size: str, device: torch.device, steps: int, trace_path: Path | None,
                    runs: int = 3) -> dict:
    from torch.profiler import ProfilerActivity, profile, schedule

    model, opt, _ = run_steps(variant, size, device, 2)  # warm-up: allocator, cuBLAS handles, optimizer state
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run_steps(variant, size, device, steps, model=model, opt=opt)
        times.append((time.perf_counter() - t0) / steps * 1e3)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    impl, pinned, sync_loss = VARIANTS[variant]
    gen = torch.Generator().manual_seed(123)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "trace.json"
        with profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=steps, repeat=1),
                     on_trace_ready=lambda p: p.export_chrome_trace(str(raw))) as prof:
            for _ in range(steps + 1):
                train_step(model, opt, *host_batch(size, model.cfg.vocab, gen), device, pinned=pinned,
                           sync_loss=sync_loss)
                prof.step()
        sync(device)
        summary = trace_summary.summarize(trace_summary.load_events(raw), PHASES, top=10)
        if trace_path is not None:
            trace_path.parent.mkdir(parents=True, exist_ok=True)
            with open(raw, "rb") as src, gzip.open(trace_path, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return {"step_ms": statistics.median(times), "step_ms_runs": times, "trace": str(trace_path) if trace_path else None,
            "profile": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(CONFIGS), default="full")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--trace-dir", type=Path)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("profile_train_step: --device cuda but no CUDA GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if device.type == "cpu":
        torch.set_num_threads(2)
    checks = verify(args.size, device, max(3, args.steps))
    rows = {}
    for name in VARIANTS:
        trace = args.trace_dir / f"{name}.json.gz" if args.trace_dir else None
        rows[name] = {**profile_variant(name, args.size, device, args.steps, trace),
                      **{k: v for k, v in checks[name].items() if k != "losses"}}
        p = rows[name]["profile"]
        idle = p["gpu_idle_fraction"]
        print(f"== {name}: {rows[name]['step_ms']:.2f} ms/step (unprofiled), verified {rows[name]['verified']}"
              + (f", GPU idle {100 * idle:.1f}%" if idle is not None else ""))
        print(trace_summary.text(p))
    base = rows["baseline"]["step_ms"]
    for r in rows.values():
        r["speedup_vs_baseline"] = base / r["step_ms"] if r["verified"] else None
    if args.json:
        from harness.device import provenance

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"provenance": provenance(device, size=args.size, steps=args.steps),
                                         "config": vars(CONFIGS[args.size]), "batch": BATCH[args.size],
                                         "n_params": CONFIGS[args.size].n_params(),
                                         "losses": {k: v["losses"] for k, v in checks.items()},
                                         "variants": rows}, indent=1, default=str))
    return 0 if all(r["verified"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
