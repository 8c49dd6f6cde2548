"""torch.compile on the training step: eager vs `default` vs `max-autotune`, and compiled autograd.

    python -m ch13.compile_train_step --size tiny|small|full [--layers N] [--modes eager,default,...] [--steps 30]
                                      [--json OUT]

`--layers N` keeps the size's widths and uses N blocks: Dynamo unrolls the blocks into one graph, so compile
time grows with depth while the per-block speedup does not (the GPU check uses 4 blocks of `small`).

What is compiled is forward + loss + backward (`fwd_bwd`); the fused AdamW step stays eager. Modes:
- `eager`: no compiler;
- `default`: `torch.compile(fwd_bwd)`: Dynamo captures the forward up to `.backward()`, AOTAutograd derives
  the backward graph ahead of time, Inductor generates Triton kernels (fused norms, RoPE, SwiGLU);
- `max-autotune`: the same, and Inductor benchmarks Triton GEMM templates against cuBLAS per shape
  (a much longer compile; CUDA graphs off: `max-autotune-no-cudagraphs`, since the optimizer runs eagerly);
- `compiled_autograd`: `default` with `torch._dynamo.config.compiled_autograd = True`: the backward is traced
  at run time from the autograd graph (hooks and all) and compiled as a graph of its own.

Each mode runs in its own process with empty Inductor and Triton caches, so its compile time is the
whole cost, not a cache hit. Reported per mode: the first step's time (compile + one step), the steady
step time (median of the last third of the steps), the compile time (first step minus steady), and the
warm-up measured, not assumed: the number of steps until every later step is within 10% of steady.
Verification: the per-step losses against eager's (same weights, same batches), within 2% in bf16.

Bound: see `train_common.py` (a step at `full` is ~54 TFLOP). What compilation can remove is the
element-wise traffic between GEMMs (norms, RoPE, SiLU * up, residual adds, the loss's softmax): at
`small` (125 M parameters, 4096 tokens) a few GB per step, against ~3 TFLOP of GEMMs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("eager", "default", "max-autotune", "compiled_autograd")


def warmup_steps(times: list[float], steady: float, within: float = 0.10) -> int:
    """Steps before the first one from which every step stays within `within` of `steady`."""
    n = len(times)
    for i in range(n):
        if all(t <= steady * (1 + within) for t in times[i:]):
            return i
    return n


def child(mode: str, size: str, steps: int, backend: str, layers: int | None = None) -> dict:
    import dataclasses

    import torch

    from ch13.train_common import CONFIGS, host_batch, loss_fn, make_model, make_optimizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(2)
    cfg = dataclasses.replace(CONFIGS[size], n_layers=layers) if layers else CONFIGS[size]
    model = make_model(size, device, seed=0, cfg=cfg)
    opt = make_optimizer(model, "fused")

    def fwd_bwd(tokens, targets):
        loss = loss_fn(model, tokens, targets)
        loss.backward()
        return loss.detach()

    step_fn = fwd_bwd
    if mode != "eager":
        import torch._dynamo

        if mode == "compiled_autograd":
            torch._dynamo.config.compiled_autograd = True
        compile_mode = {"max-autotune": "max-autotune-no-cudagraphs"}.get(mode)
        step_fn = torch.compile(fwd_bwd, mode=compile_mode, backend=backend)
    gen = torch.Generator().manual_seed(1)
    batches = [tuple(t.to(device) for t in host_batch(size, model.cfg.vocab, gen)) for _ in range(min(steps, 8))]
    times, losses = [], []
    for i in range(steps):
        t0 = time.perf_counter()
        loss = step_fn(*batches[i % len(batches)])
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    from torch._dynamo.utils import counters

    tail = times[len(times) - max(1, len(times) // 3):]
    steady = statistics.median(tail)
    return {"mode": mode, "backend": backend, "steps": steps, "n_layers": cfg.n_layers, "n_params": cfg.n_params(),
            "first_step_s": times[0], "steady_step_ms": steady * 1e3,
            "compile_s": max(0.0, times[0] - steady) if mode != "eager" else 0.0,
            "warmup_steps": warmup_steps(times, steady), "step_ms": [t * 1e3 for t in times], "losses": losses,
            "unique_graphs": int(counters["stats"].get("unique_graphs", 0)),
            "graph_breaks": int(sum(counters["graph_break"].values()))}


def run_mode(mode: str, size: str, steps: int, backend: str, timeout: float, layers: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": f"{cache}/inductor", "TRITON_CACHE_DIR": f"{cache}/triton"}
        cmd = [sys.executable, "-m", "ch13.compile_train_step", "--child", mode, "--size", size,
               "--steps", str(steps), "--backend", backend] + (["--layers", str(layers)] if layers else [])
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"mode": mode, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"mode": mode, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "small", "full"), default="small")
    parser.add_argument("--modes", default="eager,default,compiled_autograd")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--layers", type=int, help="blocks (default: the size's)")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (eager/aot_eager: CPU tests)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mode")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes or args.steps < 3 or (args.layers is not None and args.layers < 1):
        print(f"compile_train_step: modes must be among {','.join(MODES)} and --steps >= 3, --layers >= 1",
              file=sys.stderr)
        return 2
    if args.child:
        print(json.dumps(child(args.child, args.size, args.steps, args.backend, args.layers)))
        return 0
    if "eager" not in modes:
        modes.insert(0, "eager")  # the reference every loss curve and speedup is compared with
    rows = {m: run_mode(m, args.size, args.steps, args.backend, args.timeout, args.layers) for m in modes}
    eager = rows["eager"]
    ok = "error" not in eager
    for m, r in rows.items():
        if "error" in r:
            print(f"{m:>18}: failed: {r['error']}")
            ok = False
            continue
        if ok:
            err = max(abs(a - b) / abs(b) for a, b in zip(r["losses"], eager["losses"], strict=True))
            r["max_loss_rel_err_vs_eager"] = err
            r["verified"] = err <= 2e-2
            r["speedup_vs_eager"] = eager["steady_step_ms"] / r["steady_step_ms"] if r["verified"] else None
            ok = ok and r["verified"]
        print(f"{m:>18}: steady {r['steady_step_ms']:.2f} ms/step, first step {r['first_step_s']:.1f} s "
              f"(compile ~{r['compile_s']:.1f} s), warm-up {r['warmup_steps']} steps, graphs {r['unique_graphs']}, "
              f"breaks {r['graph_breaks']}, verified {r.get('verified')}, speedup {r.get('speedup_vs_eager')}")
    if args.json:
        import torch

        from harness.device import provenance

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"provenance": provenance(device, size=args.size, layers=args.layers,
                                                                backend=args.backend),
                                         "rows": rows}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
