"""DDP overlaps gradient all-reduce with the backward pass; `no_sync` skips it during gradient accumulation.

    python -m ch4.ddp_overlap                          # 2 CPU processes over gloo, tiny model
    python -m ch4.ddp_overlap --size small --json -    # a larger model, JSON on stdout
    python -m ch4.ddp_overlap --backend nccl --device cuda --world 2   # the same on GPUs (one per rank)

Every rank trains the same MLP on its own shard of each batch, in several ways, and all ways must end
with the same weights (checked against the baseline with the harness's tolerances) and the same
weights on every rank:

- `allreduce_after_backward` (baseline): backward runs to the end, then one flat all-reduce of every
  gradient. Nothing overlaps: the step costs compute + communication.
- `ddp_bucket_<N>mb`: DistributedDataParallel groups gradients into buckets of about N MB in reverse
  layer order and launches each bucket's all-reduce as soon as its last gradient is ready, while
  backward goes on through earlier layers. Small buckets start sooner but pay a per-call cost each;
  large ones overlap less. The sweep shows the trade on this node and counts buckets per step.
- `accumulate_sync_every_micro` vs `accumulate_no_sync`: K micro-batches per optimizer step. Without
  `no_sync` DDP all-reduces after every micro-batch; inside `with ddp.no_sync()` gradients accumulate
  locally and only the last micro-batch communicates: K times fewer all-reduces for the same update.

This is not a harness example: the computation spans several processes, which the harness's
one-process protocol cannot time. It verifies and times itself the same way (median of timed steps
after warm-up). Over gloo on the CPU the figures show the mechanism, not NCCL's speed; NCCL figures
on several GPUs come from the multi-GPU runs. Each run is bounded by --timeout; on expiry every rank
is killed and the command exits 1.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from harness.report import emit

SIZES = {"tiny": dict(width=128, layers=4, batch=16, steps=5, warmup=1, micro=4),
         "small": dict(width=1024, layers=8, batch=64, steps=5, warmup=1, micro=4),
         "full": dict(width=4096, layers=8, batch=128, steps=10, warmup=3, micro=4)}
BUCKETS_MB = (1.0, 4.0, 25.0)   # 25 MB is DDP's default


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"ddp_overlap: {message}", file=sys.stderr)
        sys.exit(2)


def make_model(width: int, layers: int, seed: int):
    import torch

    torch.manual_seed(seed)
    mods = []
    for _ in range(layers):
        mods += [torch.nn.Linear(width, width), torch.nn.GELU()]
    return torch.nn.Sequential(*mods, torch.nn.Linear(width, 1))


def _batches(cfg: dict, rank: int, world: int, n: int, seed: int):
    """n batches; each rank takes its own shard (the same global batches for every way of training)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(cfg["batch"] * world, cfg["width"], generator=g)
        y = torch.randn(cfg["batch"] * world, 1, generator=g)
        out.append((x[rank::world].contiguous(), y[rank::world].contiguous()))
    return out


class _Counter:
    """Counts all-reduce calls and bytes through a DDP communication hook (the default all-reduce inside)."""

    def __init__(self):
        self.calls = 0
        self.bytes = 0

    def hook(self, state, bucket):
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        self.calls += 1
        self.bytes += bucket.buffer().numel() * bucket.buffer().element_size()
        return allreduce_hook(state, bucket)


def _train(way: str, cfg: dict, rank: int, world: int, device, seed: int, bucket_mb: float | None = None) -> dict:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = make_model(cfg["width"], cfg["layers"], seed).to(device)
    micro = cfg["micro"] if way.startswith("accumulate") else 1
    steps = cfg["warmup"] + cfg["steps"]
    data = _batches(cfg, rank, world, steps * micro, seed + 1)
    data = [(x.to(device), y.to(device)) for x, y in data]
    counter = _Counter()
    if way == "allreduce_after_backward" or way == "compute_only":
        net = model
    else:
        net = DDP(model, bucket_cap_mb=bucket_mb or 25.0, device_ids=[device.index] if device.type == "cuda" else None)
        net.register_comm_hook(dist.group.WORLD, counter.hook)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times, calls_per_step = [], []
    for step in range(steps):
        dist.barrier()
        sync()
        calls_before = counter.calls
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for m in range(micro):
            x, y = data[step * micro + m]
            last = m == micro - 1
            if way == "accumulate_no_sync" and not last:
                with net.no_sync():
                    torch.nn.functional.mse_loss(net(x), y).div(micro).backward()
            else:
                torch.nn.functional.mse_loss(net(x), y).div(micro).backward()
        if way == "allreduce_after_backward":
            grads = [p.grad for p in model.parameters()]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat.div_(world)
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()
            counter.calls += 1
            counter.bytes += flat.numel() * flat.element_size()
        opt.step()
        sync()
        if step >= cfg["warmup"]:
            times.append(time.perf_counter() - t0)
            calls_per_step.append(counter.calls - calls_before)
    params = torch.cat([p.detach().reshape(-1).cpu() for p in model.parameters()])
    return {"ms_per_step": statistics.median(times) * 1e3, "allreduce_calls_per_step": statistics.median(calls_per_step),
            "grad_mib": sum(p.numel() for p in model.parameters()) * 4 / 2**20, "params": params}


def _ways(buckets: tuple[float, ...]) -> list[tuple[str, float | None]]:
    ways = [("compute_only", None), ("allreduce_after_backward", None)]
    ways += [(f"ddp_bucket_{b:g}mb", b) for b in buckets]
    ways += [("accumulate_sync_every_micro", 25.0), ("accumulate_no_sync", 25.0)]
    return ways


def _rank_main(rank: int, world: int, backend: str, device_type: str, store: str, cfg: dict, buckets, out: str, seed: int):
    import torch
    import torch.distributed as dist

    from harness.verify import compare

    torch.set_num_threads(1)  # fixed: ranks share the machine's cores
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    try:
        results = {}
        for way, bucket in _ways(buckets):
            results[way] = _train(way, cfg, rank, world, device, seed, bucket)
        # Every rank must hold the same weights, and every way the baseline's (accumulation: its own pair).
        rows = []
        base = results["allreduce_after_backward"]
        for way, r in results.items():
            gathered = [torch.empty_like(r["params"]) for _ in range(world)]
            dist.all_gather(gathered, r["params"])  # gloo gathers CPU tensors; nccl needs them on the GPU
            same_on_ranks = all(torch.equal(gathered[0], g) for g in gathered[1:])
            ref = None if way == "compute_only" else (
                results["accumulate_sync_every_micro"]["params"] if way == "accumulate_no_sync" else base["params"])
            if way == "accumulate_sync_every_micro" or ref is None:
                check = None
            else:
                cmp = compare([r["params"]], [ref])
                check = {"ok": cmp.ok, "reason": cmp.reason, "max_abs_err": cmp.max_abs_err}
            rows.append({"way": way, "ms_per_step": r["ms_per_step"],
                         "allreduce_calls_per_step": r["allreduce_calls_per_step"],
                         "same_weights_on_all_ranks": same_on_ranks if way != "compute_only" else None,
                         "matches": check})
        if rank == 0:
            Path(out).write_text(json.dumps({"rows": rows, "grad_mib": base["grad_mib"]}))
    finally:
        dist.destroy_process_group()


def run(world: int, backend: str, device: str, size: str, buckets=BUCKETS_MB, timeout: float = 120, seed: int = 0) -> dict:
    """Spawn `world` ranks, wait at most `timeout` seconds, kill them all on expiry."""
    from ch4.launch import spawn

    cfg = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="ddp_overlap_") as tmp:
        out = os.path.join(tmp, "result.json")
        spawn(_rank_main, (world, backend, device, os.path.join(tmp, "store"), cfg, buckets, out, seed), world,
              timeout, backend)
        data = json.loads(Path(out).read_text())
    rows = {r["way"]: r for r in data["rows"]}
    compute, serial = rows["compute_only"]["ms_per_step"], rows["allreduce_after_backward"]["ms_per_step"]
    comm = serial - compute
    for r in data["rows"]:
        r["speedup_vs_baseline"] = serial / r["ms_per_step"] if r["way"].startswith("ddp") else None
        # Of the communication the baseline adds, how much a DDP bucketing hides behind backward.
        r["hidden_fraction"] = ((serial - r["ms_per_step"]) / comm if r["way"].startswith("ddp") and comm > 0 else None)
    acc = rows["accumulate_sync_every_micro"]["ms_per_step"] / rows["accumulate_no_sync"]["ms_per_step"]
    ok = all((r["matches"] is None or r["matches"]["ok"]) and r["same_weights_on_all_ranks"] is not False
             for r in data["rows"])
    return {"schema": 1, "tool": "python -m ch4.ddp_overlap", "world": world, "backend": backend, "device": device,
            "size": size, "config": cfg, "grad_mib": data["grad_mib"], "rows": data["rows"], "verified": ok,
            "no_sync_speedup": acc}


def render(r: dict) -> str:
    from harness.report import text_table

    rows = []
    for x in r["rows"]:
        m = x["matches"]
        rows.append([x["way"], f"{x['ms_per_step']:.3g}", f"{x['allreduce_calls_per_step']:g}",
                     "-" if m is None else ("yes" if m["ok"] else f"NO: {m['reason']}"),
                     "-" if x["speedup_vs_baseline"] is None else f"{x['speedup_vs_baseline']:.2f}x",
                     "-" if x["hidden_fraction"] is None else f"{x['hidden_fraction']:.0%}"])
    head = (f"{r['world']} ranks, {r['backend']} on {r['device']}, size {r['size']}: {r['grad_mib']:.3g} MiB of gradients "
            f"per step")
    return "\n".join([head, text_table(["way", "ms/step", "all-reduces/step", "verified", "vs baseline", "comm hidden"], rows),
                      f"no_sync over {r['config']['micro']} micro-batches: {r['no_sync_speedup']:.2f}x per optimizer step",
                      "all ways verified" if r["verified"] else "NOT VERIFIED: see the table"])


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ch4.ddp_overlap", description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=2, help="ranks (default 2)")
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--buckets", default=",".join(f"{b:g}" for b in BUCKETS_MB), help="bucket sizes in MB, comma-separated")
    parser.add_argument("--timeout", type=float, default=120, help="seconds before every rank is killed")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or - for stdout)")
    args = parser.parse_args(argv)
    try:
        buckets = tuple(float(b) for b in args.buckets.split(","))
    except ValueError:
        parser.error(f"--buckets {args.buckets!r}: expected numbers like 1,4,25")
    if args.world < 1 or any(b <= 0 for b in buckets):
        parser.error("--world and every bucket size must be positive")
    if args.backend == "nccl" and args.device != "cuda":
        parser.error("--backend nccl needs --device cuda")
    if args.device == "cuda":
        import torch
        if torch.cuda.device_count() < args.world:
            parser.error(f"--world {args.world} on cuda needs {args.world} GPUs, {torch.cuda.device_count()} visible")
    try:
        report = run(args.world, args.backend, args.device, args.size, buckets, args.timeout)
    except (TimeoutError, Exception) as exc:
        print(f"ddp_overlap: failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
    try:
        emit(report, render, args.json)
    except OSError as exc:
        parser.error(f"cannot write {args.json}: {exc}")
    return 0 if report["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
