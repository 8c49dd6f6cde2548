"""Scaling projections as a calculator: training FLOPs, memory, GPUs, days and power, every number computed.

    python -m ch20.scaling                                   # the chapter's table, from the assumptions below
    python -m ch20.scaling --params 175e9 --tokens 300e9 [--gpu H200] [--mfu 0.4] [--gpus N | --days D]
    python -m ch20.scaling --flops 2e28 --gpu B200 --gpus 1e5 1e6 1e7 [--json OUT] [--png OUT]

Training compute C = 6 N D (N parameters, D tokens: 2 FLOPs per parameter per token forward, 4 backward;
attention's s^2 term and recomputation are left out, so it is a floor). Time = C / (GPUs x peak x MFU), the
peak from harness.peaks.DATASHEET (dense tensor-core rate of the chosen precision: a datasheet lead, not a
measurement) and MFU the model-FLOPs utilisation a run reaches (0.3-0.5 is typical of large dense runs).
Memory per parameter with Adam in mixed precision: weights and gradients at the training precision, plus
fp32 master weights and two fp32 moments (12 bytes): 16 bytes at bf16. Activations only when the model's
shape is given: per layer about 34 x seq x micro_batch x hidden bytes (bf16, no recomputation; Korthikanti
et al. 2022, attention scores not stored, as with flash attention). Power: GPUs x board power x PUE.

The book's figures: GPT-3 175B trained on 300B tokens is 6 x 175e9 x 300e9 = 3.15e23 FLOPs (the "3e23");
a 100T-parameter model at 2e28 FLOPs implies 2e28 / (6 x 1e14) = 3.3e13 tokens; at 100K GPUs such a run
takes years, at 10M GPUs weeks (the table shows how many of each).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.peaks import DATASHEET

# Board power (W), vendor figures for the DATASHEET parts (SXM/HGX where both exist): a lead, like the peaks.
BOARD_W = {"B200": 1000, "H200": 700, "H100 SXM": 700, "H100 PCIe": 350, "A100": 400, "L40S": 350, "RTX 4090": 450}
BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
ADAM_STATE_BYTES = 12          # fp32 master weights + first and second moments
SECONDS_PER_DAY = 86400.0

# The chapter's rows: (name, parameters, tokens, FLOPs given instead of 6ND, where the assumption comes from)
CHAPTER_MODELS = [
    ("GPT-3", 175e9, 300e9, None, "175B parameters, 300B tokens (Brown et al. 2020)"),
    ("GPT-4-class", None, None, 2.1e25, "2.1e25 FLOPs: a public outside estimate (Epoch AI), not a disclosed figure"),
    ("10T", 10e12, 200e12, None, "10T parameters at 20 tokens per parameter (the Chinchilla ratio)"),
    ("100T", 100e12, 2e28 / (6 * 100e12), None, "100T parameters; tokens chosen so that 6ND = 2e28 (the book's figure)"),
]
CHAPTER_GPUS = (1e5, 1e6, 1e7)


def training_flops(params: float, tokens: float) -> float:
    return 6.0 * params * tokens


def tokens_for(flops: float, params: float) -> float:
    return flops / (6.0 * params)


def gpu_flops(gpu: str, precision: str = "bf16") -> float:
    """Dense FLOP/s of one GPU at this precision, from the datasheet table."""
    if gpu not in DATASHEET:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(DATASHEET)}")
    peak = DATASHEET[gpu].get(precision)
    if not peak:
        raise ValueError(f"{gpu} has no {precision} figure in the datasheet table")
    return peak * 1e12


def days_to_train(flops: float, gpus: float, gpu: str, mfu: float, precision: str = "bf16") -> float:
    return flops / (gpus * gpu_flops(gpu, precision) * mfu) / SECONDS_PER_DAY


def gpus_needed(flops: float, days: float, gpu: str, mfu: float, precision: str = "bf16") -> float:
    return flops / (days * SECONDS_PER_DAY * gpu_flops(gpu, precision) * mfu)


def memory_bytes(params: float, precision: str = "bf16", *, layers: int | None = None, hidden: int | None = None,
                 seq: int | None = None, micro_batch: int | None = None) -> dict:
    """Training memory of the whole model (divide by the parallel degrees to get one GPU's share)."""
    b = BYTES[precision]
    out = {"weights": params * b, "gradients": params * b, "optimizer": params * ADAM_STATE_BYTES}
    if layers and hidden and seq and micro_batch:
        out["activations_per_micro_batch"] = 34.0 * layers * seq * micro_batch * hidden * (b / 2)
    out["total_without_activations"] = out["weights"] + out["gradients"] + out["optimizer"]
    return out


def power(gpus: float, gpu: str, pue: float = 1.2) -> float:
    """Facility watts: board power times the data centre's power usage effectiveness."""
    return gpus * BOARD_W[gpu] * pue


def project(name: str, params, tokens, flops, *, gpu: str, mfu: float, precision: str, gpu_counts, pue: float,
            source: str = "") -> dict:
    if flops is None:
        flops = training_flops(params, tokens)
    row = {"model": name, "params": params, "tokens": tokens, "flops": flops, "source": source, "gpu": gpu,
           "precision": precision, "mfu": mfu, "pue": pue, "runs": []}
    if params:
        m = memory_bytes(params, precision)
        row["memory_tb"] = {k: v / 1e12 for k, v in m.items()}
        row["min_gpus_to_hold_state"] = m["total_without_activations"] / (_hbm_bytes(gpu) or float("nan"))
    for n in gpu_counts:
        d = days_to_train(flops, n, gpu, mfu, precision)
        watts = power(n, gpu, pue)
        row["runs"].append({"gpus": n, "days": d, "facility_mw": watts / 1e6, "energy_gwh": watts * d * 24 / 1e9,
                            "gpu_hours": n * d * 24})
    return row


def _hbm_bytes(gpu: str) -> float | None:
    return {"B200": 192e9, "H200": 141e9, "H100 SXM": 80e9, "H100 PCIe": 80e9, "A100": 80e9, "L40S": 48e9,
            "RTX 4090": 24e9}.get(gpu)


def fmt_days(d: float) -> str:
    if d >= 730:
        return f"{d / 365:.1f} years"
    return f"{d:.1f} days" if d >= 1 else f"{d * 24:.1f} hours" if d * 24 >= 1 else f"{d * 1440:.1f} minutes"


def table(rows: list[dict]) -> str:
    counts = [r["gpus"] for r in rows[0]["runs"]]
    head = "| model | parameters | tokens | training FLOPs (6ND) | " + " | ".join(
        f"{n:,.0f} {rows[0]['gpu']}" for n in counts) + " |"
    lines = [head, "|" + "---|" * (4 + len(counts))]
    for r in rows:
        p = f"{r['params']:.3g}" if r["params"] else "-"
        t = f"{r['tokens']:.3g}" if r["tokens"] else "-"
        cells = [f"{fmt_days(x['days'])}, {x['facility_mw']:,.0f} MW" for x in r["runs"]]
        lines.append(f"| {r['model']} | {p} | {t} | {r['flops']:.3g} | " + " | ".join(cells) + " |")
    r0 = rows[0]
    lines.append(f"\n{r0['gpu']} at {r0['precision']} ({gpu_flops(r0['gpu'], r0['precision']) / 1e12:g} TFLOP/s dense, "
                 f"datasheet), MFU {r0['mfu']:g}, {BOARD_W[r0['gpu']]} W per GPU, PUE {r0['pue']:g}.")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in rows:
        ax.loglog([x["gpus"] for x in r["runs"]], [x["days"] for x in r["runs"]], marker="o", label=r["model"])
    ax.axhline(90, color="gray", lw=0.8, ls="--")
    ax.set_xlabel(f"GPUs ({rows[0]['gpu']})")
    ax.set_ylabel("days to train")
    ax.set_title(f"6ND at MFU {rows[0]['mfu']:g}; dashed: 90 days", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"ch20.scaling: {message}", file=sys.stderr)
            sys.exit(2)

    p = Parser(prog="python -m ch20.scaling", description=__doc__.splitlines()[0])
    p.add_argument("--params", type=float)
    p.add_argument("--tokens", type=float)
    p.add_argument("--flops", type=float, help="training FLOPs instead of 6ND (with --params: tokens are derived)")
    p.add_argument("--gpu", default="H200", help=f"one of: {', '.join(DATASHEET)}")
    p.add_argument("--precision", default="bf16", choices=list(BYTES))
    p.add_argument("--mfu", type=float, default=0.4)
    p.add_argument("--gpus", type=float, nargs="+", help="GPU counts to project (default 1e5 1e6 1e7)")
    p.add_argument("--days", type=float, help="instead: how many GPUs finish in this many days")
    p.add_argument("--pue", type=float, default=1.2)
    p.add_argument("--json", type=Path)
    p.add_argument("--png", type=Path)
    args = p.parse_args(argv)
    if args.gpu not in DATASHEET:
        p.error(f"unknown --gpu {args.gpu!r}; known: {', '.join(DATASHEET)}")
    if not 0 < args.mfu <= 1 or args.pue < 1:
        p.error("--mfu must be in (0, 1] and --pue at least 1")
    if any(x is not None and x <= 0 for x in (args.params, args.tokens, args.flops, args.days)) or \
            any(n <= 0 for n in args.gpus or []):
        p.error("--params, --tokens, --flops, --gpus and --days must be positive")
    custom = args.params is not None or args.tokens is not None or args.flops is not None
    if custom and args.flops is None and (args.params is None or args.tokens is None):
        p.error("give --params and --tokens, or --flops")
    try:
        gpu_flops(args.gpu, args.precision)
    except ValueError as exc:
        p.error(str(exc))
    counts = args.gpus or list(CHAPTER_GPUS)
    models = [("model", args.params, args.tokens if args.flops is None else
               (tokens_for(args.flops, args.params) if args.params else None), args.flops, "command line")] \
        if custom else [(n, pa, t, f, s) for n, pa, t, f, s in CHAPTER_MODELS]
    rows = [project(n, pa, t, f, gpu=args.gpu, mfu=args.mfu, precision=args.precision, gpu_counts=counts,
                    pue=args.pue, source=s) for n, pa, t, f, s in models]
    if args.days:
        for r in rows:
            r["gpus_for_days"] = {"days": args.days,
                                  "gpus": gpus_needed(r["flops"], args.days, args.gpu, args.mfu, args.precision)}
    print(table(rows))
    for r in rows:
        if "memory_tb" in r:
            m = r["memory_tb"]
            print(f"{r['model']}: weights {m['weights']:.3g} TB, gradients {m['gradients']:.3g} TB, Adam state "
                  f"{m['optimizer']:.3g} TB: at least {r['min_gpus_to_hold_state']:,.0f} {args.gpu} to hold them")
        if "gpus_for_days" in r:
            print(f"{r['model']}: {r['gpus_for_days']['gpus']:,.0f} {args.gpu} to finish in {args.days:g} days")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "assumptions": __doc__}, indent=1) + "\n")
    if args.png:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        plot(rows, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
