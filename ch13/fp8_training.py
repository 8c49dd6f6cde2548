"""FP8 training of the decoder's linear layers vs bf16: ours (`fp8_linear.py`) beside torchao's, step time and loss.

    python -m ch13.fp8_training --size tiny|small|full [--steps 200] [--compile] [--runs bf16,...] [--out DIR]

Five runs from the same weights on the same batches: `bf16` (baseline: every GEMM in bf16); `fp8_tensorwise`
and `fp8_rowwise` (optimized: the blocks' seven linear layers in FP8 through our `Float8Linear`, the LM head
in bf16); `torchao_tensorwise` and `torchao_rowwise` (reference: the same layers converted by the vendor's
`torchao.float8.convert_to_float8_training` with its `tensorwise` and `rowwise` recipes). torchao is
optional: without it (or without FP8 tensor cores) those runs are skipped with a one-line reason. The
torchao release must match torch (0.17 is the one built against torch 2.11). torchao's float8 is meant to
run under torch.compile (its casts and amaxes are left to Inductor to fuse); eager, it pays each as a
separate kernel, as ours does: compare them with `--compile`.

The data is synthetic but learnable, so the loss curve means something: each sequence counts up from a
random start with a random stride (mod the vocabulary), with 10% of tokens replaced by noise; the model must
infer the stride from the context, so the loss falls well below ln(vocab) and flattens near the noise's entropy.

Reported per run: the median step time over the steps after the first 10 (`--compile`: the first step holds
the compilation and is reported apart), the loss every step, and the mean loss over the last tenth of the
steps; an FP8 run counts as tracking bf16 when that mean is within 5% of bf16's (`tracks_bf16`). `--compile`
compiles each decoder block (regional compilation, as torchtitan does): the 16 blocks run the same code, so
Dynamo traces and Inductor compiles one block's graph and every block reuses it, at about a sixteenth of the
whole model's compile time; the embedding, LM head and loss stay eager (the same in every run). DIR gets
fp8_training.json and loss_curves.png. FP8 needs sm_89+ (`torch._scaled_mm` on FP8 tensor cores); the CPU
tests check the quantization math through our emulated path instead.

Bound: at `full` (1.1 B parameters, 8192 tokens a step) the seven block GEMMs hold ~0.9 of the step's
~54 TFLOP; at twice the bf16 rate they could take half the time, so the ceiling is ~1.8x on the step.
The casts eat into that (eager: ~12 element-wise passes per linear per step; `--compile` fuses them), and
the goal of the chapter is >= 1.2x.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ch13.fp8_linear import convert_to_float8, has_fp8_mm
from ch13.train_common import BATCH, CONFIGS, loss_fn, make_model, make_optimizer
from harness.device import provenance

# run: role; ours and torchao's side by side, so a run cut short by its deadline still leaves a pair
RUNS = {"bf16": "baseline", "fp8_tensorwise": "optimized", "torchao_tensorwise": "reference",
        "fp8_rowwise": "optimized", "torchao_rowwise": "reference"}


def torchao_missing() -> str | None:
    """None where torchao's float8 training imports, else why not (one line)."""
    try:
        import torchao.float8  # noqa: F401
    except Exception as exc:  # not installed, or built for another torch
        return f"torchao not importable ({type(exc).__name__}: {exc})".splitlines()[0][:200]
    return None


def skip_reason(run: str, device: torch.device) -> str | None:
    if run == "bf16":
        return None
    if not has_fp8_mm(device):
        cap = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
        return "needs FP8 tensor cores (sm_89+)" + (f", this GPU is sm_{cap[0]}{cap[1]}" if cap else ", no CUDA")
    return torchao_missing() if run.startswith("torchao_") else None


def _torchao_version() -> str | None:
    try:
        import torchao
    except Exception:
        return None
    return getattr(torchao, "__version__", "?")


def _fp8_ready(module, fqn: str) -> bool:
    """The layers both implementations convert: the blocks' linears (not the LM head), dims multiples of 16."""
    return fqn != "output" and module.in_features % 16 == 0 and module.out_features % 16 == 0


def convert(model, run: str) -> int:
    """Convert `model`'s block linears in place for `run`; returns how many layers run in FP8."""
    if run == "bf16":
        return 0
    impl, recipe = run.split("_", 1)
    if impl == "fp8":
        return convert_to_float8(model, recipe)
    from torchao.float8 import Float8LinearConfig, convert_to_float8_training
    from torchao.float8.float8_linear import Float8Linear as AoFloat8Linear

    convert_to_float8_training(model, config=Float8LinearConfig.from_recipe_name(recipe), module_filter_fn=_fp8_ready)
    return sum(isinstance(m, AoFloat8Linear) for m in model.modules())


def structured_batch(b: int, t: int, vocab: int, gen: torch.Generator, device, noise: float = 0.1):
    """(tokens, targets): each row counts from a random start by a random stride mod vocab; `noise` of tokens random."""
    start = torch.randint(0, vocab, (b, 1), generator=gen, device=device)
    stride = torch.randint(1, 17, (b, 1), generator=gen, device=device)
    seq = (start + stride * torch.arange(t + 1, device=device)) % vocab
    flip = torch.rand(b, t + 1, generator=gen, device=device) < noise
    seq = torch.where(flip, torch.randint(0, vocab, (b, t + 1), generator=gen, device=device), seq)
    return seq[:, :-1], seq[:, 1:]


def train(run: str, base_model, size: str, steps: int, device, compile_model: bool) -> dict:
    model = copy.deepcopy(base_model)
    swapped = convert(model, run)
    opt = make_optimizer(model, "fused", lr=3e-4)
    if compile_model:  # regional: one compiled graph, reused by every block
        torch._dynamo.reset()
        for block in model.layers:
            block.compile()
    gen = torch.Generator(device=device).manual_seed(1)
    b, t = BATCH[size]
    losses, times = [], []
    for _ in range(steps):
        tokens, targets = structured_batch(b, t, model.cfg.vocab, gen, device)
        t0 = time.perf_counter()
        loss = loss_fn(model, tokens, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
        losses.append(loss.detach())
    losses = [float(v) for v in losses]
    warm = min(10, steps - 1)
    tail = losses[-max(1, steps // 10):]
    return {"run": run, "role": RUNS[run], "linears_in_fp8": swapped, "median_step_ms": statistics.median(times[warm:]),
            "first_step_ms": times[0], "final_loss": sum(tail) / len(tail), "losses": losses}


def draw(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        if "losses" in r:
            ax.plot(r["losses"], lw=1, label=f"{r['run']} ({r['median_step_ms']:.1f} ms/step)")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path, rows: list[dict], prov: dict, device: torch.device, args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    n = CONFIGS[args.size].n_params()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    draw(rows, out / "loss_curves.png", f"decoder {n / 1e6:.0f} M, {args.steps} steps, {name}"
         + (", compiled (each block)" if args.compile else ", eager"))
    (out / "fp8_training.json").write_text(json.dumps({"provenance": prov, "rows": rows}, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(CONFIGS), default="full")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--compile", action="store_true", help="torch.compile each block (fuses the FP8 casts)")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, from: {', '.join(RUNS)}")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    runs = [r for r in args.runs.split(",") if r]
    if any(r not in RUNS for r in runs) or "bf16" not in runs:
        parser.error(f"--runs must name bf16 and any of {', '.join(RUNS)}")
    runs.sort(key=list(RUNS).index)  # bf16 first: the others are compared with it
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(2)
    base = make_model(args.size, device, seed=0)
    prov = provenance(device, size=args.size, steps=args.steps, compiled=args.compile,
                      compile_scope="each block" if args.compile else None, torchao=_torchao_version())
    rows = []
    for run in runs:
        reason = skip_reason(run, device)
        if reason:
            rows.append({"run": run, "role": RUNS[run], "skipped": reason})
            print(f"{run:>18}: skipped: {reason}")
            continue
        try:
            r = train(run, base, args.size, args.steps, device, args.compile)
        except Exception as exc:  # a failed FP8 run is recorded as failed; the runs after it still run
            if run == "bf16":
                raise
            r = {"run": run, "role": RUNS[run], "failed": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
            rows.append(r)
            print(f"{run:>18}: FAILED: {r['failed']}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        rows.append(r)
        bf16 = rows[0]
        r["speedup_vs_bf16"] = bf16["median_step_ms"] / r["median_step_ms"]
        r["final_loss_rel_diff_vs_bf16"] = (r["final_loss"] - bf16["final_loss"]) / bf16["final_loss"]
        r["tracks_bf16"] = abs(r["final_loss_rel_diff_vs_bf16"]) <= 0.05
        print(f"{r['run']:>18} ({r['role']}): {r['median_step_ms']:.1f} ms/step ({r['speedup_vs_bf16']:.2f}x bf16), "
              f"first step {r['first_step_ms'] / 1e3:.1f} s, loss {r['losses'][0]:.3f} -> {r['final_loss']:.3f} "
              f"({100 * r['final_loss_rel_diff_vs_bf16']:+.1f}% vs bf16)", flush=True)
        if args.out:  # after every run: a run cut short by a deadline keeps the ones before it
            write(args.out, rows, prov, device, args)
    if args.out:
        write(args.out, rows, prov, device, args)
    return 0 if all(r.get("tracks_bf16", True) and "failed" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
