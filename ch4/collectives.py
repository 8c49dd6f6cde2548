"""NCCL's collectives against the wire: algorithm and bus bandwidth from 8 B to 1 GiB, as nccl-tests measures them.

    python -m ch4.collectives                                   # 2 CPU ranks over gloo, tiny sizes
    python -m ch4.collectives --backend nccl --world 2 --size full --json out.json --plot busbw.png
    torchrun --nproc-per-node=8 -m ch4.collectives --backend nccl --size full --json out.json

Each rank holds one GPU (NCCL) or runs on the CPU (gloo). For every collective and message size, each
rank fills its buffers with random small integers (stored as fp32, so every sum is exact in any order),
runs the collective once and compares the result, element for element, with what it must be (computed on
the rank from the other ranks' seeds); only then is it timed: warm-up calls, then `iters` back-to-back
calls between two CUDA events (wall clock on the CPU), time per call = elapsed / iters, and the slowest
rank's time is the collective's time (a collective ends when its last rank does). The calls go through
torch.distributed, so a small message's time includes PyTorch's per-call cost wherever the host cannot stay
ahead of the GPU; nccl-tests, calling NCCL from C, shows lower small-message latencies.

Sizes, as nccl-tests defines them (S bytes of fp32, per rank):
  all_reduce      S in, S out            algbw = S / t    busbw = algbw x 2(n-1)/n
  all_gather      S/n in, S out          algbw = S / t    busbw = algbw x (n-1)/n
  reduce_scatter  S in, S/n out          algbw = S / t    busbw = algbw x (n-1)/n
  all_to_all      S in, S out (S/n to each rank)          busbw = algbw x (n-1)/n
  broadcast       S from rank 0          algbw = S / t    busbw = algbw
busbw is the traffic a rank's busiest link carries per second in the bandwidth-optimal algorithm (a ring
all-reduce sends and receives 2(n-1)/n x S per rank), so it is the figure to hold against one link's
bandwidth in one direction. Here that is the measured P2P ceiling (`benchmark_peak.py`, the best GPU-to-GPU
copy, one direction) and the datasheet's NVLink figure per direction (H200, NVLink 4: 900 GB/s per GPU both
ways together, 450 GB/s each way). Goal (ch4/targets.toml): all-reduce busbw at 1 GiB >= 80% of the
measured P2P ceiling. Bound: at 1 GiB a 2-GPU all-reduce moves 1 GiB each way per rank, so at 450 GB/s it
cannot take less than ~2.4 ms; small messages are bound by latency (a few microseconds per hop), not bytes.

Every run has a deadline (--timeout): on expiry every rank is killed and the command exits 1. Multicast
(NVLS) stays off in every rank: NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1, NVSHMEM_DISABLE_NVLS=1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import warnings
import zlib
from datetime import timedelta
from pathlib import Path

from harness.report import emit

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast")
SIZES = {"tiny": dict(max_bytes=64 << 10, warmup=1, iters=3),
         "small": dict(max_bytes=16 << 20, warmup=3, iters=10),
         "full": dict(max_bytes=1 << 30, warmup=5, iters=20)}
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
GOAL_BYTES = 1 << 30
ELEMENT = 4   # fp32


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"collectives: {message}", file=sys.stderr)
        sys.exit(2)


def bus_factor(op: str, n: int) -> float:
    """busbw / algbw, as nccl-tests defines it."""
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    if op == "broadcast":
        return 1.0
    raise ValueError(f"unknown collective {op!r}")


def parse_bytes(text: str) -> int:
    """'8', '64K', '16M', '1G' (powers of 1024) -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(i?B)?\s*", text, re.I)
    if not m:
        raise ValueError(f"{text!r} is not a size like 8, 64K, 16M or 1G")
    return int(m[1]) << {"": 0, "K": 10, "M": 20, "G": 30}[m[2].upper()]


def message_sizes(min_bytes: int, max_bytes: int, step: int = 2) -> list[int]:
    out, s = [], min_bytes
    while s <= max_bytes:
        out.append(s)
        s *= step
    return out


def element_count(op: str, nbytes: int, n: int) -> int:
    """fp32 elements per rank's full buffer; a multiple of n where the op splits it n ways (as nccl-tests rounds)."""
    count = nbytes // ELEMENT
    return count - count % n if op in ("all_gather", "reduce_scatter", "all_to_all") else count


# ---- one rank ----------------------------------------------------------------------------------------------

def _data(seed: int, op: str, count: int, rank: int, numel: int, device):
    """Rank `rank`'s input for this op and size: the same on every rank that computes it (for the expected value)."""
    import torch

    g = torch.Generator(device=device).manual_seed(zlib.crc32(f"{seed}/{op}/{count}/{rank}".encode()))
    return torch.randint(-8, 9, (numel,), generator=g, device=device).float()


def _case(op: str, count: int, rank: int, n: int, device, seed: int):
    """(call, output, expected): the collective on fresh inputs, and what its output must hold."""
    import torch
    import torch.distributed as dist

    part = count // n
    data = lambda r, numel=count: _data(seed, op, count, r, numel, device)  # noqa: E731
    if op == "all_reduce":
        buf = data(rank)
        expected = sum((data(r) for r in range(n)), torch.zeros(count, device=device))
        return (lambda: dist.all_reduce(buf)), buf, expected
    if op == "all_gather":
        inp, out = data(rank, part), torch.empty(count, device=device)
        expected = torch.cat([data(r, part) for r in range(n)])
        return (lambda: dist.all_gather_into_tensor(out, inp)), out, expected
    if op == "reduce_scatter":
        inp, out = data(rank), torch.empty(part, device=device)
        expected = sum((data(r)[rank * part:(rank + 1) * part] for r in range(n)), torch.zeros(part, device=device))
        return (lambda: dist.reduce_scatter_tensor(out, inp)), out, expected
    if op == "all_to_all":
        inp, out = data(rank), torch.empty(count, device=device)
        expected = torch.cat([data(r)[rank * part:(rank + 1) * part] for r in range(n)])
        return (lambda: dist.all_to_all_single(out, inp)), out, expected
    if op == "broadcast":
        buf = data(rank)
        expected = data(0)
        return (lambda: dist.broadcast(buf, src=0)), buf, expected
    raise ValueError(op)


def _measure_one(op: str, nbytes: int, rank: int, n: int, device, cfg: dict, seed: int) -> dict:
    import torch
    import torch.distributed as dist

    count = element_count(op, nbytes, n)
    row = {"op": op, "bytes": nbytes, "count": count, "moved_bytes": count * ELEMENT}
    if count == 0 or (op in ("all_gather", "reduce_scatter", "all_to_all") and count < n):
        return {**row, "skipped": f"{nbytes} B is fewer than one fp32 element per rank"}
    cuda = device.type == "cuda"
    call, out, expected = _case(op, count, rank, n, device, seed)
    call()
    ok = torch.tensor([1 if torch.equal(out, expected) else 0], device=device)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)   # verified only if verified on every rank
    del expected
    row["verified"] = bool(ok.item())
    if not row["verified"]:
        return {**row, "skipped": "output differs from the expected values on at least one rank: not timed"}
    # Timed on the verified buffers. An in-place all-reduce multiplies them by n per call (to inf, after enough
    # calls): a sum takes the same time whatever its values, and the result was checked above.
    for _ in range(cfg["warmup"]):
        call()
    if cuda:
        torch.cuda.synchronize(device)
    dist.barrier(**({"device_ids": [device.index]} if cuda else {}))
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(cfg["iters"]):
            call()
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1e3 / cfg["iters"]
    else:
        t0 = time.perf_counter()
        for _ in range(cfg["iters"]):
            call()
        seconds = (time.perf_counter() - t0) / cfg["iters"]
    slowest = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    seconds = float(slowest.item())
    algbw = count * ELEMENT / seconds / 1e9
    return {**row, "time_us": seconds * 1e6, "algbw_gbps": algbw, "busbw_gbps": algbw * bus_factor(op, n)}


def _watchdog(seconds: float) -> threading.Event:
    """End this rank when the run's deadline passes or its launcher is gone, so no rank outlives the run.
    Setting the returned event stops the watch (the rank finished in time)."""
    parent, deadline, done = os.getppid(), time.monotonic() + seconds, threading.Event()

    def watch():
        while not done.wait(0.5):
            if time.monotonic() > deadline or os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    return done


def rank_main(rank: int, n: int, backend: str, init: str, opts: dict, out: str | None) -> dict | None:
    """One rank's sweep; rank 0 returns (and writes to `out`, when given) the rows, verified and timed."""
    for k, v in NO_MULTICAST.items():
        os.environ[k] = v
    # torch 2.13 renames the *_tensor collectives; the GPU nodes' torch 2.11 has only these names.
    warnings.filterwarnings("ignore", message=r".*is deprecated. Please use `torch.distributed", category=FutureWarning)
    finished = _watchdog(opts["timeout"] + 5)
    try:
        return _sweep(rank, n, backend, init, opts, out)
    finally:
        finished.set()


def _sweep(rank: int, n: int, backend: str, init: str, opts: dict, out: str | None) -> dict | None:
    import torch
    import torch.distributed as dist

    from harness.device import provenance

    torch.set_num_threads(1)   # the ranks share the machine's cores
    cuda = backend == "nccl"
    local = int(os.environ.get("LOCAL_RANK", rank))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    kwargs = {"device_id": device} if cuda else {}
    if init == "env://":
        dist.init_process_group(backend, timeout=timedelta(seconds=opts["timeout"]), **kwargs)
    else:
        dist.init_process_group(backend, init_method=init, rank=rank, world_size=n,
                                timeout=timedelta(seconds=opts["timeout"]), **kwargs)
    try:
        rows = [_measure_one(op, nbytes, rank, n, device, opts, opts["seed"])
                for op in opts["ops"] for nbytes in message_sizes(opts["min_bytes"], opts["max_bytes"], opts["step"])]
        if rank != 0:
            return None
        raw = {"rows": rows, "provenance": provenance(device, world=n, backend=backend)}
        if out:
            Path(out).write_text(json.dumps(raw))
        return raw
    finally:
        dist.destroy_process_group()


def _spawned(rank: int, n: int, backend: str, init: str, opts: dict, out: str) -> None:
    rank_main(rank, n, backend, init, opts, out)


# ---- launching, judging, reporting ---------------------------------------------------------------------------

START_METHOD = "spawn"   # CUDA needs fresh processes; the CPU tests fork instead (no torch import per rank)


def launch(n: int, backend: str, opts: dict, start_method: str | None = None) -> dict:
    """Start n ranks, wait at most opts['timeout'] seconds, kill them all on expiry; rank 0's raw result."""
    from ch4.launch import spawn

    with tempfile.TemporaryDirectory(prefix="collectives_") as tmp:
        out = os.path.join(tmp, "rank0.json")
        spawn(_spawned, (n, backend, f"file://{tmp}/store", opts, out), n, opts["timeout"], backend,
              start_method=start_method or START_METHOD)
        return json.loads(Path(out).read_text())


def p2p_ceiling(device_info: dict, peaks_file: Path | None = None) -> dict:
    """The measured P2P ceiling (best one-direction GPU-to-GPU figure in a peaks file) and the datasheet's."""
    from harness import peaks

    name = device_info.get("name", "cpu")
    key = peaks.datasheet_key(name)
    path = Path(peaks_file) if peaks_file else peaks.peaks_path(name)
    out = {"peaks_file": str(path), "datasheet_key": key,
           "datasheet_gbps": peaks.DATASHEET.get(key, {}).get("gpu_link_gbps"),
           "datasheet_what": "NVLink per direction (half the bidirectional per-GPU figure)",
           "measured_gbps": None, "measured_figure": None}
    if name == "cpu":
        out["why"] = "CPU run: no GPU link to compare with"
        return out
    if not path.exists():
        out["why"] = f"no {path}: run benchmark_peak.py --p2p-only on 2+ GPUs"
        return out
    figures = peaks.load_peaks(path)["figures"]
    p2p = {k: f["value"] for k, f in figures.items()
           if re.fullmatch(r"p2p_.*\d+to\d+_gbps", k) and f.get("value") is not None}
    if not p2p:
        out["why"] = f"{path} has no P2P figure"
        return out
    best = max(p2p, key=p2p.get)
    out.update(measured_gbps=p2p[best], measured_figure=best, measured_what=figures[best].get("what"))
    return out


def goal(chapter_dir: Path, arch: str) -> dict | None:
    """ch4/targets.toml's all-reduce claim for this architecture (None: none applies)."""
    from harness.targets import load_targets

    spec = load_targets(chapter_dir).get("collectives", {}).get("fraction_of_peak_bandwidth")
    if not spec:
        return None
    key = arch if arch in spec else ("default" if arch != "cpu" else None)
    return None if spec.get(key) is None else {"value": spec[key], "op": spec.get("op", ">="),
                                               "source": spec.get(f"source_{key}", spec.get("source", ""))}


def finish(raw: dict, n: int, backend: str, size: str, opts: dict, peaks_file: Path | None = None) -> dict:
    """The report: rows, the ceiling they are held against, and the goal judged."""
    dev = raw["provenance"]["device"]
    rows = raw["rows"]
    verified = all(r.get("verified", True) for r in rows)
    ceiling = p2p_ceiling(dev, peaks_file)
    ar = [r for r in rows if r["op"] == "all_reduce" and "busbw_gbps" in r]
    top = max(ar, key=lambda r: r["bytes"], default=None)
    comparison = None
    if top:
        frac = lambda of: top["busbw_gbps"] / of if of else None  # noqa: E731
        comparison = {"bytes": top["bytes"], "busbw_gbps": top["busbw_gbps"],
                      "fraction_of_p2p": frac(ceiling["measured_gbps"]), "fraction_of_datasheet": frac(ceiling["datasheet_gbps"])}
    judged = {"metric": "all_reduce busbw at 1 GiB / measured P2P ceiling", "met": None}
    claim = goal(Path(__file__).resolve().parent, dev.get("arch", "cpu"))
    if claim is None:
        judged["why"] = "no goal for this machine (CPU runs have none)"
    elif n < 2:
        judged["why"] = "one rank: nothing crosses a link"
    else:
        judged.update(claim)
        if top is None or top["bytes"] < GOAL_BYTES:
            judged.update(met=None, why=f"the goal is at 1 GiB; this run stopped at {opts['max_bytes']} B")
        elif comparison["fraction_of_p2p"] is None:
            judged.update(met=False, why=f"missed: cannot be judged ({ceiling.get('why')})")
        else:
            judged.update(measured=comparison["fraction_of_p2p"], met=comparison["fraction_of_p2p"] >= claim["value"])
    return {"schema": 1, "tool": "python -m ch4.collectives", "provenance": raw["provenance"], "world": n,
            "backend": backend, "size": size, "dtype": "float32",
            "config": {k: opts[k] for k in ("min_bytes", "max_bytes", "step", "warmup", "iters", "seed", "ops")},
            "definitions": {"algbw": "bytes / time per call (bytes as nccl-tests counts them, see the module docstring)",
                            "busbw": {op: f"algbw x {f}" for op, f in
                                      (("all_reduce", "2(n-1)/n"), ("all_gather", "(n-1)/n"), ("reduce_scatter", "(n-1)/n"),
                                       ("all_to_all", "(n-1)/n"), ("broadcast", "1"))},
                            "time": "slowest rank's mean over iters back-to-back calls after warm-up (CUDA events on GPUs)"},
            "rows": rows, "verified": verified, "ceiling": ceiling, "all_reduce_largest": comparison, "goal": judged}


def _size_text(b: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if b >= 1 << shift and b % (1 << shift) == 0:
            return f"{b >> shift} {unit}"
    return f"{b} B"


def render(r: dict) -> str:
    from harness.report import text_table

    by_size: dict[int, dict[str, dict]] = {}
    for row in r["rows"]:
        by_size.setdefault(row["bytes"], {})[row["op"]] = row
    ops = list(dict.fromkeys(row["op"] for row in r["rows"]))
    cell = lambda x: ("-" if x is None else x.get("skipped", "")[:12] if "busbw_gbps" not in x  # noqa: E731
                      else f"{x['time_us']:.4g} us {x['busbw_gbps']:.4g}")
    table = [[_size_text(b)] + [cell(cols.get(op)) for op in ops] for b, cols in sorted(by_size.items())]
    c, lines = r["ceiling"], []
    lines.append(f"{r['world']} ranks, {r['backend']}, fp32; each cell: time per call, busbw GB/s")
    lines.append(text_table(["size"] + ops, table))
    lines.append("P2P ceiling (measured, one direction): "
                 + (f"{c['measured_gbps']:.4g} GB/s ({c['measured_figure']}, {c['peaks_file']})" if c["measured_gbps"]
                    else f"not measured ({c.get('why')})")
                 + (f"; datasheet {c['datasheet_key']}: {c['datasheet_gbps']} GB/s per direction" if c["datasheet_gbps"] else ""))
    a = r["all_reduce_largest"]
    if a:
        parts = [f"all_reduce at {_size_text(a['bytes'])}: busbw {a['busbw_gbps']:.4g} GB/s"]
        if a["fraction_of_p2p"] is not None:
            parts.append(f"{a['fraction_of_p2p']:.0%} of the measured P2P ceiling")
        if a["fraction_of_datasheet"] is not None:
            parts.append(f"{a['fraction_of_datasheet']:.0%} of the datasheet's per-direction NVLink")
        lines.append(", ".join(parts))
    g = r["goal"]
    status = {True: "met", False: "MISSED", None: "not judged"}[g["met"]]
    claim = f" {g['op']} {g['value']:g}" if g.get("value") is not None else ""
    lines.append(f"goal ({g['metric']}{claim}): {status}"
                 + (f", measured {g['measured']:.2f}" if g.get("measured") is not None else "")
                 + (f" ({g['why']})" if g.get("why") else ""))
    lines.append("all results verified" if r["verified"] else "NOT VERIFIED: see the rows")
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    """busbw against message size, one line per collective, log-log, with the ceilings drawn across."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for op in dict.fromkeys(row["op"] for row in r["rows"]):
        pts = [(row["bytes"], row["busbw_gbps"]) for row in r["rows"] if row["op"] == op and "busbw_gbps" in row]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=op)
    c = r["ceiling"]
    if c["measured_gbps"]:
        ax.axhline(c["measured_gbps"], color="k", linestyle="--", label=f"measured P2P {c['measured_gbps']:.0f} GB/s")
    if c["datasheet_gbps"] and r["backend"] == "nccl":
        ax.axhline(c["datasheet_gbps"], color="gray", linestyle=":",
                   label=f"{c['datasheet_key']} NVLink datasheet {c['datasheet_gbps']} GB/s per direction")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("message size (bytes, per rank; nccl-tests convention)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    dev = r["provenance"]["device"].get("name", "?")
    ax.set_title(f"{r['world']} x {dev}, {r['backend']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ch4.collectives", description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, help="ranks to start (default 2; under torchrun: its WORLD_SIZE)")
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo", help="nccl: one GPU per rank")
    parser.add_argument("--size", choices=list(SIZES), default="tiny", help="largest message and iterations")
    parser.add_argument("--min-bytes", default="8")
    parser.add_argument("--max-bytes", help="largest message, e.g. 64K, 16M, 1G (default: from --size)")
    parser.add_argument("--step", type=int, choices=[2, 4], default=2, help="size factor between messages")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated, of: {', '.join(OPS)}")
    parser.add_argument("--iters", type=int, help="timed calls per size (default: from --size)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (default: from --size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300, help="seconds before every rank is killed")
    parser.add_argument("--peaks", type=Path, help="peaks JSON with the P2P ceiling (default: peaks/<gpu>.json)")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or - for stdout)")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="draw busbw vs size to this file")
    args = parser.parse_args(argv)
    cfg = SIZES[args.size]
    try:
        min_bytes, max_bytes = parse_bytes(args.min_bytes), parse_bytes(args.max_bytes or str(cfg["max_bytes"]))
    except ValueError as exc:
        parser.error(str(exc))
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    if not ops or any(o not in OPS for o in ops):
        parser.error(f"--ops {args.ops!r}: choose from {', '.join(OPS)}")
    if not 1 <= min_bytes <= max_bytes:
        parser.error(f"need 1 <= --min-bytes ({min_bytes}) <= --max-bytes ({max_bytes})")
    iters = cfg["iters"] if args.iters is None else args.iters
    warmup = cfg["warmup"] if args.warmup is None else args.warmup
    if iters < 1 or warmup < 0 or args.timeout <= 0 or iters > 1000:
        parser.error("--iters must be 1..1000, --warmup >= 0 and --timeout > 0")
    if args.peaks and not args.peaks.is_file():
        parser.error(f"--peaks {args.peaks}: no such file")
    torchrun = all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))
    n = int(os.environ["WORLD_SIZE"]) if torchrun else (2 if args.world is None else args.world)
    if args.world is not None and torchrun and args.world != n:
        parser.error(f"--world {args.world} under torchrun, whose WORLD_SIZE is {n}")
    if n < 1:
        parser.error("--world must be at least 1")
    if args.backend == "nccl":
        import torch
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < (int(os.environ["LOCAL_WORLD_SIZE"]) if torchrun and "LOCAL_WORLD_SIZE" in os.environ else n):
            parser.error(f"--backend nccl with {n} ranks needs a GPU per rank, {have} visible")
    opts = dict(ops=ops, min_bytes=min_bytes, max_bytes=max_bytes, step=args.step, iters=iters, warmup=warmup,
                seed=args.seed, timeout=args.timeout)
    try:
        if torchrun:
            raw = rank_main(int(os.environ["RANK"]), n, args.backend, "env://", opts, None)
            if raw is None:   # ranks other than 0 report nothing
                return 0
        else:
            raw = launch(n, args.backend, opts)
        report = finish(raw, n, args.backend, args.size, opts, args.peaks)
    except Exception as exc:
        print(f"collectives: failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}", file=sys.stderr)
        return 1
    try:
        emit(report, render, args.json)
        if args.plot:
            plot(report, args.plot)
    except OSError as exc:
        parser.error(f"cannot write {args.json or args.plot}: {exc}")
    except ImportError as exc:   # the figures are in the JSON; only the picture is missing
        print(f"collectives: no plot: {exc}", file=sys.stderr)
    return 0 if report["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
