"""How busy does the loader keep the model? Samples/s and step utilization over a grid of DataLoader settings.

    python -m ch5.loader_sweep                         # tiny on the CPU, full on a GPU
    python -m ch5.loader_sweep --size full --json -    # JSON on stdout (or --json FILE)

For each setting (workers, pin_memory, prefetch_factor, persistent workers, batched decode) one epoch
is run to warm up and `--epochs` are timed over the dataset `data_pipeline.py` uses. Utilization is the
model step's own time (the same batches, already on the device, through the same model) over the
epoch's wall time: 100% means the loader keeps the step fed, lower means the step waits for data.
Every setting's logits are checked against the single-process ones. The best setting is named at the
end; it depends on the node's cores and storage, which is why it is measured rather than assumed.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import torch

from ch5 import data_pipeline as dp
from ch5.sharded_dataset import shutdown_workers
from harness.report import emit


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"loader_sweep: {message}", file=sys.stderr)
        sys.exit(2)


def grid(size: str, device: torch.device) -> list[dict]:
    cpus = os.cpu_count() or 2
    workers = sorted({w for w in (0, 2, 4, 8, 12) if w <= max(2, cpus - 1)} | {0})
    if size == "tiny":
        workers = [w for w in workers if w <= 2]
    rows = [dict(workers=0, pin=False, prefetch=None, persistent=False, batched=False)]
    pins = (False, True) if device.type == "cuda" else (False,)   # nothing to pin for on the CPU
    for w, pin, batched in itertools.product([w for w in workers if w], pins, (False, True)):
        rows.append(dict(workers=w, pin=pin, prefetch=4, persistent=True, batched=batched))
    best_w = max(workers)
    pin = device.type == "cuda"
    rows += [dict(workers=best_w, pin=pin, prefetch=p, persistent=True, batched=True) for p in (2, 8)]
    rows.append(dict(workers=best_w, pin=pin, prefetch=4, persistent=False, batched=True))
    return rows


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def step_only_seconds(x, batches_on_device) -> float:
    with dp.step_threads(x["device"]):
        for images in batches_on_device[:2]:
            dp.model_step(x, images)   # warm-up
        _sync(x["device"])
        t0 = time.perf_counter()
        for images in batches_on_device:
            dp.model_step(x, images)
        _sync(x["device"])
        return time.perf_counter() - t0


@torch.no_grad()
def sweep(size: str, device: torch.device, epochs: int = 2, seed: int = 0) -> dict:
    x = dp.setup(size, device, seed)
    try:
        reference = dp.single_process(x)
        batches = [b.to(device) for b, _ in dp.loader(x)]
        step_s = step_only_seconds(x, batches)
        rows = []
        for cfg in grid(size, device):
            loader = dp.loader(x, workers=cfg["workers"], pin=cfg["pin"], prefetch=cfg["prefetch"],
                               persistent=cfg["persistent"], batched=cfg["batched"])
            try:
                out = dp.epoch(x, loader)            # warm-up epoch: starts persistent workers
                _sync(device)
                times = []
                for _ in range(epochs):
                    t0 = time.perf_counter()
                    out = dp.epoch(x, loader)
                    _sync(device)
                    times.append(time.perf_counter() - t0)
            finally:
                shutdown_workers(loader)
            epoch_s = min(times)
            ok = bool(torch.allclose(out, reference, rtol=1e-4, atol=1e-4))
            rows.append({**cfg, "epoch_ms": epoch_s * 1e3,
                         "samples_per_s": x["cfg"]["n"] / epoch_s, "step_utilization": min(1.0, step_s / epoch_s),
                         "matches_single_process": ok})
        best = max((r for r in rows if r["matches_single_process"]), key=lambda r: r["samples_per_s"])
        return {"schema": 1, "tool": "python -m ch5.loader_sweep", "device": str(device), "size": size,
                "dataset": {**{k: v for k, v in x["cfg"].items() if k != "channels"}, "bytes_on_disk": x["data"].nbytes},
                "cpus": os.cpu_count(), "step_only_ms": step_s * 1e3, "rows": rows, "best": best,
                "verified": all(r["matches_single_process"] for r in rows)}
    finally:
        x["data"].close()


def render(r: dict) -> str:
    from harness.report import text_table

    rows = [[r_["workers"], r_["pin"], r_["prefetch"] or "-", r_["persistent"], r_["batched"], f"{r_['epoch_ms']:.4g}",
             f"{r_['samples_per_s']:.4g}", f"{r_['step_utilization']:.0%}", "yes" if r_["matches_single_process"] else "NO"]
            for r_ in r["rows"]]
    b = r["best"]
    return "\n".join([
        f"{r['dataset']['n']} images {r['dataset']['hw']}x{r['dataset']['hw']} in {r['dataset']['shards']} shards "
        f"({r['dataset']['bytes_on_disk'] / 2**20:.3g} MiB), batch {r['dataset']['batch']}, on {r['device']}, "
        f"{r['cpus']} CPUs; the model step alone: {r['step_only_ms']:.3g} ms per epoch",
        text_table(["workers", "pin", "prefetch", "persistent", "batched", "epoch ms", "samples/s", "step busy", "verified"],
                   rows),
        f"best: workers={b['workers']} pin={b['pin']} prefetch={b['prefetch']} persistent={b['persistent']} "
        f"batched={b['batched']}: {b['samples_per_s']:.4g} samples/s, step busy {b['step_utilization']:.0%}"])


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ch5.loader_sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--size", choices=list(dp.SIZES), help="default: full on a GPU, tiny on the CPU")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per setting (the best is kept)")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or - for stdout)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for, but torch sees no CUDA GPU")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu")
    report = sweep(args.size or ("full" if device.type == "cuda" else "tiny"), device, args.epochs)
    try:
        emit(report, render, args.json)
    except OSError as exc:
        parser.error(f"cannot write {args.json}: {exc}")
    return 0 if report["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
