"""Symmetric memory: one GPU writes straight into another's buffer, with no receive posted on the other side.

    python -m ch4.symmetric_memory                                   # 2 CPU ranks over gloo: baselines only
    python -m ch4.symmetric_memory --device cuda --size full --json out.json   # every visible GPU

`torch.distributed._symmetric_memory` allocates a buffer on every rank (`symm_mem.empty`) and maps each
peer's buffer into every rank's address space (`symm_mem.rendezvous`); `hdl.get_buffer(peer, ...)` is
then an ordinary tensor whose memory lives on the peer GPU, so a `copy_` into it (a cudaMemcpyAsync)
is a one-sided put over NVLink and a `copy_` out of it a get. `hdl.barrier()` is a kernel that
signals every peer through its signal pad and waits for theirs: after it, every put has landed.
No multicast (NVLS) object or multimem instruction is used anywhere here.

(a) all-gather of W shards of S bytes each, W ranks:
- `collective_all_gather` (baseline): `dist.all_gather_into_tensor` (NCCL on GPUs, gloo on the CPU).
- `symm_put`: each rank copies its shard into slot `rank` of every peer's buffer, then one barrier.
- `symm_get`: each rank publishes its shard in its own buffer, a barrier, copies every peer's slot out,
  and a second barrier so no rank overwrites a slot a peer is still reading.
  Bound: each GPU receives (W-1)*S bytes; at NVLink's ~450 GB/s per direction on an H200 (spec; the
  measured ceiling is what NCCL reaches here at the largest size) time >= (W-1)*S / 450 GB/s.

(b) all-gather + matmul, C = all_gather(A_shard) @ B (a tensor-parallel layer's input all-gather):
- `all_gather_then_matmul` (baseline): the all-gather finishes, then one GEMM.
- `fused_all_gather_matmul`: `torch.ops.symm_mem.fused_all_gather_matmul`: the local shard's GEMM runs
  while a second stream copies (gets) the next peer's shard out of its symmetric buffer, shard by shard.
  Bound: max(comm, 2*M*K*N / FLOP rate) instead of their sum; the gain is at most the smaller of the two.
  Rows `all_gather_only` and `matmul_only` time the parts alone; "perfect overlap" is the larger of them.
Every output is compared with one computed from all ranks' inputs (each rank regenerates them from the
seed): copies must match exactly, GEMMs within the harness's tolerance for the dtype. Times are the
slowest rank's mean over the timed iterations (CUDA events on GPUs). On the CPU (gloo) only the
baselines run: symmetric memory needs CUDA GPUs that can map each other's memory; the other variants
are listed as skipped with that reason. Each run is bounded by --timeout; on expiry every rank is killed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

from harness.report import emit

# Kept set in every rank: no NVLink SHARP (multicast) objects, on these machines or anywhere.
NO_MULTICAST_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}

SIZES = {  # shard_kib: per-rank shard of the all-gather; gemm: (M total rows, K, N) of the all-gather + matmul
    "tiny": dict(shard_kib=[4, 64], gemm=[(64, 32, 48)], iters=3, warmup=1),
    "small": dict(shard_kib=[64, 4096], gemm=[(1024, 1024, 1024)], iters=10, warmup=3),
    "full": dict(shard_kib=[64, 1024, 16384, 131072], gemm=[(4096, 8192, 8192), (16384, 8192, 8192), (32768, 8192, 4096)],
                 iters=20, warmup=5),
}
SKIP_CPU = "symmetric memory needs CUDA GPUs that map each other's memory (run with --device cuda)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"symmetric_memory: {message}", file=sys.stderr)
        sys.exit(2)


# ---- running W ranks with a deadline (ch4/nvshmem_put.py uses it too) ------------------------------

def spawn_ranks(fn, world: int, args: tuple, timeout: float, backend: str) -> None:
    """Run fn(rank, world, store, *args) in `world` spawned processes; kill them all past `timeout` seconds."""
    from ch4.launch import spawn

    with tempfile.TemporaryDirectory(prefix="ch4_ranks_") as tmp:
        spawn(fn, (world, os.path.join(tmp, "store"), *args), world, timeout, backend)


def init_rank(rank: int, world: int, store: str, backend: str, device_type: str):
    """This process's device, with its process group joined."""
    import torch
    import torch.distributed as dist

    os.environ.update(NO_MULTICAST_ENV)
    torch.set_num_threads(1)  # fixed: ranks share the machine's cores
    device = torch.device(device_type, rank % torch.cuda.device_count()) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # Split-K partial sums in float32, not bfloat16: a GEMM's output is then off from the float32
        # reference by its own rounding only, whatever split cuBLAS picks for a shape.
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    return device


def timed(fn, device, iters: int, warmup: int) -> float:
    """Mean seconds per call on this rank, then the slowest rank's figure (every rank must call this)."""
    import torch
    import torch.distributed as dist

    for _ in range(warmup):
        fn()
    dist.barrier()
    if device.type == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1e3 / iters
    else:
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        seconds = (time.perf_counter() - t0) / iters
    worst = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


# ---- the symmetric-memory handle --------------------------------------------------------------------

def register_group() -> str:
    """The world group's name, registered for symmetric memory where this torch still asks for it."""
    import torch.distributed as dist
    import torch.distributed._symmetric_memory as symm_mem

    group_name = dist.group.WORLD.group_name
    enable = getattr(symm_mem, "enable_symm_mem_for_group", None)
    if enable is not None and not hasattr(enable, "__deprecated__"):   # older torch needs it; newer ones deprecate it
        enable(group_name)
    return group_name


def use_cuda_backend(device) -> str | None:
    """Ask for torch's own CUDA symmetric-memory backend (VMM mappings over NVLink, not NVSHMEM's heap,
    not NCCL's windows) before the first allocation; the backend in use, where this torch says."""
    import torch.distributed._symmetric_memory as symm_mem

    try:
        symm_mem.set_backend("CUDA")
    except (AttributeError, RuntimeError, ValueError):
        pass   # a torch without the choice has only this backend
    try:
        return symm_mem.get_backend(device)
    except (AttributeError, RuntimeError):
        return None


def symmetric_buffer(numel: int, dtype, device):
    """A buffer in every rank's symmetric heap and the handle that maps the peers' ones (no multicast)."""
    import torch.distributed._symmetric_memory as symm_mem

    group_name = register_group()
    buf = symm_mem.empty(numel, dtype=dtype, device=device)
    return buf, symm_mem.rendezvous(buf, group_name)


def _inputs(shape, dtype, world: int, seed: int, device):
    """Every rank's input, generated alike on every rank (same seed, same kind of device): shard r is rank r's
    own; the reference needs them all."""
    import torch

    g = torch.Generator(device).manual_seed(seed)
    return [torch.randn(shape, generator=g, device=device).to(dtype) for _ in range(world)]


# ---- (a) all-gather -----------------------------------------------------------------------------------

def all_gather_ways(shard, out, rank: int, world: int) -> tuple[dict, object]:
    """The ways to gather every rank's `shard` (n elements) on this rank; and the symmetric buffer, where
    `symm_put` leaves its result (the others leave theirs in `out`)."""
    import torch.distributed as dist

    n, device = shard.numel(), shard.device
    ways = {"collective_all_gather": lambda: dist.all_gather_into_tensor(out, shard)}
    if device.type != "cuda":
        return ways, None
    buf, hdl = symmetric_buffer(world * n, shard.dtype, device)
    peers = [hdl.get_buffer(p, (world * n,), shard.dtype) for p in range(world)]  # peer p's buffer, mapped here

    def put():
        for p in range(world):
            peers[p][rank * n:(rank + 1) * n].copy_(shard)   # one-sided: peer p posts nothing
        hdl.barrier(channel=0)                               # every rank's puts have landed

    def get():
        buf[rank * n:(rank + 1) * n].copy_(shard)
        hdl.barrier(channel=0)                               # every slot is published
        for p in range(world):
            out[p * n:(p + 1) * n].copy_(peers[p][p * n:(p + 1) * n])
        hdl.barrier(channel=1)                               # nobody overwrites a slot still being read

    return {**ways, "symm_put": put, "symm_get": get}, buf


def all_gather_rows(cfg: dict, rank: int, world: int, device, seed: int) -> list[dict]:
    import torch
    import torch.distributed as dist

    rows = []
    for kib in cfg["shard_kib"]:
        n = kib * 1024 // 4
        shards = _inputs((n,), torch.float32, world, seed + kib, device)
        expected = torch.cat(shards)
        out = torch.empty(world * n, dtype=torch.float32, device=device)
        ways, buf = all_gather_ways(shards[rank], out, rank, world)
        for way in ["collective_all_gather", "symm_put", "symm_get"]:
            row = {"part": "all_gather", "way": way, "shard_bytes": n * 4, "gathered_bytes": world * n * 4,
                   "role": "baseline" if way == "collective_all_gather" else "optimized"}
            if way not in ways:
                rows.append({**row, "skipped": SKIP_CPU})
                continue
            row["seconds"] = timed(ways[way], device, cfg["iters"], cfg["warmup"])
            out.zero_()
            if buf is not None:
                buf.zero_()
            dist.barrier()             # no rank puts into a buffer its owner is still clearing
            ways[way]()                # one more, checked
            result = buf if way == "symm_put" else out
            row["verified"] = bool(torch.equal(result, expected))
            # NCCL's bus bandwidth convention for all-gather: (W-1)/W of the gathered bytes cross links.
            row["bus_gbps"] = (world - 1) * n * 4 / row["seconds"] / 1e9
            rows.append(row)
    return rows


# ---- (b) all-gather + matmul --------------------------------------------------------------------------

def gemm_ways(a_shard, b, a_full) -> tuple[dict, dict]:
    """The parts alone (all-gather, GEMM on the gathered A) and the two ways to compute all_gather(a_shard) @ b."""
    import torch
    import torch.distributed as dist

    def unfused():
        dist.all_gather_into_tensor(a_full, a_shard)
        return a_full @ b

    parts = {"all_gather_only": lambda: dist.all_gather_into_tensor(a_full, a_shard), "matmul_only": lambda: a_full @ b}
    ways = {"all_gather_then_matmul": unfused}
    if a_shard.device.type == "cuda":
        group_name = register_group()
        ways["fused_all_gather_matmul"] = lambda: torch.ops.symm_mem.fused_all_gather_matmul(
            a_shard, [b], 0, group_name)[1][0]
    return parts, ways


def gemm_rows(cfg: dict, rank: int, world: int, device, seed: int) -> list[dict]:
    import torch

    from harness.verify import compare

    rows = []
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for m, k, n in cfg["gemm"]:
        shape = {"part": "all_gather_matmul", "shape": [m, k, n], "dtype": str(dtype).removeprefix("torch.")}
        if m % world:
            rows.append({**shape, "skipped": f"M={m} not divisible by {world}"})
            continue
        a_shards = _inputs((m // world, k), dtype, world, seed + m, device)
        b = _inputs((k, n), dtype, 1, seed + m + 1, device)[0]
        # The reference: the whole A, on this rank, in float32 (a GEMM's rounding is judged against it).
        reference = (torch.cat(a_shards).float() @ b.float()).to(dtype)
        parts, ways = gemm_ways(a_shards[rank], b, torch.empty(m, k, dtype=dtype, device=device))
        # The parts alone, so the overlap can be judged: perfect overlap costs max(all-gather, GEMM), none their sum.
        part_seconds = {}
        for way, fn in parts.items():
            part_seconds[way] = timed(fn, device, cfg["iters"], cfg["warmup"])
            rows.append({**shape, "way": way, "role": "part", "seconds": part_seconds[way]})
        for way in ["all_gather_then_matmul", "fused_all_gather_matmul"]:
            row = {**shape, "way": way, "role": "baseline" if way == "all_gather_then_matmul" else "optimized"}
            if way not in ways:
                rows.append({**row, "skipped": SKIP_CPU})
                continue
            row["seconds"] = timed(ways[way], device, cfg["iters"], cfg["warmup"])
            cmp = compare([ways[way]()], [reference])
            row["verified"], row["reason"] = cmp.ok, cmp.reason
            row["tflops"] = 2 * m * k * n / row["seconds"] / 1e12
            row["perfect_overlap_seconds"] = max(part_seconds.values())
            rows.append(row)
    return rows


def _rank_main(rank: int, world: int, store: str, backend: str, device_type: str, cfg: dict, parts, out: str, seed: int):
    import torch.distributed as dist

    device = init_rank(rank, world, store, backend, device_type)
    try:
        symm_backend = use_cuda_backend(device) if device.type == "cuda" else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            rows = []
            if "all_gather" in parts:
                rows += all_gather_rows(cfg, rank, world, device, seed)
            if "matmul" in parts:
                rows += gemm_rows(cfg, rank, world, device, seed)
        if rank == 0:
            Path(out).write_text(json.dumps({"rows": rows, "symm_backend": symm_backend}))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def summarize(rows: list[dict]) -> bool:
    """Speedups over the baseline of the same size, in place; whether every output that ran was verified.
    An optimized way whose output did not match earns no speedup."""
    def key(r):
        return r["part"], r.get("shard_bytes"), tuple(r.get("shape") or ())

    base = {key(r): r["seconds"] for r in rows if r.get("role") == "baseline" and "seconds" in r and r.get("verified")}
    for r in rows:
        b = base.get(key(r))
        r["speedup_vs_baseline"] = (b / r["seconds"] if b and "seconds" in r and r.get("role") == "optimized"
                                    and r.get("verified") else None)
    return all(r.get("verified", True) for r in rows)


def run(world: int, device: str, size: str, parts=("all_gather", "matmul"), timeout: float = 180, seed: int = 0) -> dict:
    backend = "nccl" if device == "cuda" else "gloo"
    cfg = SIZES[size]
    with tempfile.TemporaryDirectory(prefix="symm_mem_") as tmp:
        out = os.path.join(tmp, "rows.json")
        spawn_ranks(_rank_main, world, (backend, device, cfg, tuple(parts), out, seed), timeout, backend)
        data = json.loads(Path(out).read_text())
    rows = data["rows"]
    verified = summarize(rows)
    import torch

    from harness.device import provenance
    prov = provenance(torch.device("cuda" if device == "cuda" else "cpu"), size=size, world=world, backend=backend)
    return {"schema": 1, "tool": "python -m ch4.symmetric_memory", "world": world, "device": device, "backend": backend,
            "size": size, "config": cfg, "env": NO_MULTICAST_ENV, "symm_backend": data["symm_backend"], "rows": rows,
            "verified": verified, "provenance": prov}


def render(r: dict) -> str:
    from harness.report import text_table

    table = []
    for x in r["rows"]:
        what = (f"{x['shard_bytes'] / 2**10:g} KiB/rank" if x["part"] == "all_gather" else "x".join(map(str, x["shape"])))
        if "skipped" in x:
            table.append([x["part"], what, x.get("way", "-"), "-", "-", "-", "-", f"skipped: {x['skipped']}"])
            continue
        rate = f"{x['bus_gbps']:.3g} GB/s bus" if "bus_gbps" in x else (f"{x['tflops']:.3g} TFLOP/s" if "tflops" in x else "-")
        ver = "-" if "verified" not in x else ("yes" if x["verified"] else f"NO {x.get('reason', '')}")
        sp = "-" if x["speedup_vs_baseline"] is None else f"{x['speedup_vs_baseline']:.2f}x"
        bound = f"{x['perfect_overlap_seconds'] * 1e6:.1f}" if "perfect_overlap_seconds" in x else "-"
        table.append([x["part"], what, x["way"], f"{x['seconds'] * 1e6:.1f}", bound, rate, sp, ver])
    head = f"{r['world']} ranks, {r['backend']} on {r['device']}, size {r['size']}" + (
        f", symmetric-memory backend {r['symm_backend']}" if r.get("symm_backend") else "")
    header = ["part", "size", "way", "us", "perfect overlap us", "rate", "vs baseline", "verified"]
    return "\n".join([head, text_table(header, table),
                      "all outputs verified" if r["verified"] else "NOT VERIFIED: see the table"])


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ch4.symmetric_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, help="ranks (default: every visible GPU with --device cuda, else 2)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--parts", default="all_gather,matmul", help="all_gather, matmul, or both (comma-separated)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds before every rank is killed")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or - for stdout)")
    args = parser.parse_args(argv)
    parts = tuple(p for p in args.parts.split(",") if p)
    if not parts or any(p not in ("all_gather", "matmul") for p in parts):
        parser.error(f"--parts {args.parts!r}: expected all_gather, matmul or all_gather,matmul")
    visible = 0
    if args.device == "cuda":
        import torch
        visible = torch.cuda.device_count()
    world = args.world if args.world is not None else (visible if args.device == "cuda" else 2)
    if world < 2:
        parser.error(f"--world must be at least 2 (got {world}; {visible} GPUs visible)" if args.device == "cuda"
                     else f"--world must be at least 2 (got {world})")
    if args.device == "cuda" and world > visible:
        parser.error(f"--world {world} on cuda needs {world} GPUs, {visible} visible")
    try:
        report = run(world, args.device, args.size, parts, args.timeout)
    except Exception as exc:
        print(f"symmetric_memory: failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)
        return 1
    try:
        emit(report, render, args.json)
    except OSError as exc:
        parser.error(f"cannot write {args.json}: {exc}")
    return 0 if report["verified"] else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # as from `timeout`: the ranks are killed on the way out
    sys.exit(main())
