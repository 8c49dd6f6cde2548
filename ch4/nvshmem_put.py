"""Device-initiated puts with NVSHMEM: a kernel moves data to the next GPU, and a kernel there sees it arrive.

    python -m ch4.nvshmem_put                        # every visible GPU (2 at least), tiny sizes
    python -m ch4.nvshmem_put --size full --json out.json
    python -m ch4.nvshmem_put --build-only           # compile ch4/nvshmem/ring_put.cu (nvcc, no GPU needed)

`ch4/nvshmem/ring_put.cu` runs one process per GPU (a PE). In a ring, each PE's kernel calls
`nvshmemx_putmem_signal_block` to write its buffer into the next PE's symmetric heap and raise a signal
word there, and a one-thread kernel spins in `nvshmem_signal_wait_until` until the previous PE's data
has landed: no CPU call sits between "data ready" and "data sent". The PEs meet through NVSHMEM's
unique-id bootstrap (no MPI, no torch): PE 0 writes the id to a file the others read.

The baseline is the same ring with NCCL: `dist.batch_isend_irecv` of the same bytes to the next rank and
from the previous one, timed the same way (CUDA events over many steps, mean per step, slowest rank).
Both sides check that every received element is exactly the sender's pattern.
Bound: a step moves S bytes over one NVLink path: time >= S / ~450 GB/s (H200, per direction, spec) plus
a fixed cost; small puts measure that fixed cost (kernel launch + signal round trip), large ones the link.

The program is compiled at run time with nvcc (`-rdc=true`, linked with `libnvshmem_host` and
`libnvshmem_device.a`) against the headers and libraries of the `nvidia-nvshmem-cu*` wheel, found
through $NVSHMEM_HOME, as `nvidia/nvshmem` on sys.path, or unzipped into build/nvshmem/wheel (to compile
where it is not installed: `pip download --no-deps nvidia-nvshmem-cu13`, unzip it there). Without the
wheel, a needed file of it, nvcc, or two GPUs, the command says which and exits 0 having skipped.
NVSHMEM_DISABLE_NVLS=1 stays set.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ch4.symmetric_memory import NO_MULTICAST_ENV, init_rank, spawn_ranks
from harness.report import emit

SOURCE = Path(__file__).resolve().parent / "nvshmem" / "ring_put.cu"
BUILD_ROOT = Path(__file__).resolve().parent.parent / "build" / "nvshmem"
UNPACKED = BUILD_ROOT / "wheel" / "nvidia" / "nvshmem"   # a wheel unzipped here (git-ignored) is found too
SIZES = {"tiny": dict(bytes=[8, 65536], iters=20),
         "small": dict(bytes=[8, 4096, 1 << 20], iters=100),
         "full": dict(bytes=[8, 1024, 65536, 1 << 20, 16 << 20, 256 << 20], iters=200)}
NEEDED = {"include/nvshmem.h": "the headers", "include/nvshmemx.h": "the headers",
          "lib/libnvshmem_device.a": "the device library that -rdc=true links into the kernel",
          "lib/libnvshmem_host.so*": "the host library", "lib/nvshmem_bootstrap_uid.so*": "the unique-id bootstrap"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"nvshmem_put: {message}", file=sys.stderr)
        sys.exit(2)


# ---- finding NVSHMEM and building the program ----------------------------------------------------

def find_nvshmem() -> tuple[Path | None, str]:
    """The NVSHMEM root (holding include/ and lib/) and '' , or None and the reason it cannot be used."""
    home = os.environ.get("NVSHMEM_HOME")
    candidates = [Path(home)] if home else [Path(p) / "nvidia" / "nvshmem" for p in sys.path if p] + [UNPACKED]
    root = next((c for c in candidates if (c / "include").is_dir() or (c / "lib").is_dir()), None)
    if root is None:
        where = f"NVSHMEM_HOME={home}" if home else "nvidia/nvshmem on sys.path or in build/nvshmem/wheel"
        return None, f"NVSHMEM not found ({where}): install the nvidia-nvshmem-cu13 wheel or set NVSHMEM_HOME"
    for pattern, what in NEEDED.items():
        folder, name = pattern.split("/")
        if not list((root / folder).glob(name)):
            return None, f"NVSHMEM at {root} lacks {pattern} ({what})"
    return root, ""


def host_library(root: Path) -> Path:
    """libnvshmem_host.so, or the versioned file the wheel ships (libnvshmem_host.so.3)."""
    return sorted((root / "lib").glob("libnvshmem_host.so*"), key=lambda p: len(p.name))[0]


def nvcc_command(root: Path, out: Path, arch: str, nvcc: str = "nvcc", compile_only: bool = False) -> list[str]:
    """Relocatable device code (-rdc=true): the kernel's NVSHMEM calls are resolved at device-link time
    against libnvshmem_device.a; the host side links libnvshmem_host, found again at run time by rpath."""
    cmd = [nvcc, "-rdc=true", "-O3", "-std=c++17", f"-gencode=arch=compute_{arch[3:]},code={arch}",
           "-I", str(root / "include"), str(SOURCE), "-o", str(out)]
    if compile_only:
        return cmd[:1] + ["-c"] + cmd[1:]
    lib = root / "lib"
    return cmd + [f"-L{lib}", f"-l:{host_library(root).name}", str(lib / "libnvshmem_device.a"), "-Xlinker", f"-rpath,{lib}"]


def build(root: Path, arch: str, nvcc: str, timeout: float = 300) -> Path:
    """The ring_put program for `arch`, compiled once per source, NVSHMEM root, nvcc and arch."""
    from harness.cuda_build import nvcc_version

    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), str(root).encode(), nvcc_version(nvcc).encode(),
                                     arch.encode()])).hexdigest()[:16]
    exe = BUILD_ROOT / f"ring_put-{arch}-{key}"
    if exe.exists():
        return exe
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    tmp = exe.with_suffix(".tmp")
    proc = subprocess.run(nvcc_command(root, tmp, arch, nvcc), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0])
        raise RuntimeError(f"nvcc failed on {SOURCE.name}: {first.strip()[:300]}")
    tmp.replace(exe)
    return exe


# ---- the NVSHMEM ring: one process per GPU ---------------------------------------------------------

def nvshmem_env(root: Path, max_bytes: int) -> dict[str, str]:
    lib = str(root / "lib")
    return {**os.environ, **NO_MULTICAST_ENV,
            "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [lib, os.environ.get("LD_LIBRARY_PATH")])),
            "NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME": os.environ.get("NVSHMEM_BOOTSTRAP_UID_SOCK_IFNAME", "lo"),
            "NVSHMEM_REMOTE_TRANSPORT": "none",   # one node: NVLink P2P only, no network transport to probe
            "NVSHMEM_DISABLE_NCCL": "1",          # the ring needs no NCCL-backed collectives
            "NVSHMEM_SYMMETRIC_SIZE": str(max(1 << 30, 2 * max_bytes + (256 << 20)))}


def run_nvshmem(exe: Path, root: Path, world: int, sizes: list[int], iters: int, timeout: float) -> list[dict]:
    """Start one PE per GPU, each in its own session; past the deadline (or on Ctrl-C) every PE is killed."""
    with tempfile.TemporaryDirectory(prefix="nvshmem_ring_") as tmp:
        uid = os.path.join(tmp, "uid")
        env = {**nvshmem_env(root, max(sizes)), "RING_PUT_DEADLINE_S": str(int(timeout) + 10)}
        logs = [open(os.path.join(tmp, f"pe{r}.out"), "w+") for r in range(world)]
        procs = [subprocess.Popen([str(exe), str(r), str(world), uid, str(iters), *map(str, sizes)], env=env,
                                  stdout=logs[r], stderr=subprocess.STDOUT, start_new_session=True) for r in range(world)]
        deadline = time.monotonic() + timeout
        try:
            while any(p.poll() is None for p in procs):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"NVSHMEM ring gave no result within {timeout:g} s")
                if any(p.poll() not in (None, 0) for p in procs):
                    break   # one PE failed: the others would wait for it forever
                time.sleep(0.1)
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)   # that PE's own session, nothing else
                p.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
        # The PE that failed on its own first, before any we killed for waiting on it.
        failed = sorted((r for r, p in enumerate(procs) if p.returncode != 0), key=lambda r: procs[r].returncode == -9)
        if failed:
            tail = " | ".join(outputs[failed[0]].strip().splitlines()[-3:])
            raise RuntimeError(f"PE {failed[0]} exited {procs[failed[0]].returncode}: {tail[:500]}")
    lines = [json.loads(ln) for out in outputs for ln in out.splitlines() if ln.startswith("{")]
    rows = []
    for b in sizes:
        mine = [x for x in lines if x["bytes"] == b]
        rows.append({"bytes": b, "us_per_step": max(x["us_per_step"] for x in mine), "blocks": mine[0]["blocks"],
                     "verified": len(mine) == world and all(x["wrong_elements"] == 0 for x in mine),
                     "wrong_elements": sum(x["wrong_elements"] for x in mine)})
    return rows


# ---- the NCCL ring, the baseline -------------------------------------------------------------------

def _pattern(n: int, sender: int, device):
    """What `sender` sends: every element names its sender and its index (exact in float32)."""
    import torch

    return (torch.arange(n, device=device) % 65521 + sender * 1000003).float()


def _nccl_step(send, recv, nxt: int, prv: int):
    import torch.distributed as dist

    ops = [dist.P2POp(dist.isend, send, nxt), dist.P2POp(dist.irecv, recv, prv)]
    for work in dist.batch_isend_irecv(ops):
        work.wait()


def _nccl_rank(rank: int, world: int, store: str, sizes: list[int], iters: int, out: str):
    import torch
    import torch.distributed as dist

    from ch4.symmetric_memory import timed

    device = init_rank(rank, world, store, "nccl", "cuda")
    try:
        nxt, prv = (rank + 1) % world, (rank - 1) % world
        rows = []
        for b in sizes:
            n = max(1, b // 4)
            send, recv = _pattern(n, rank, device), torch.zeros(n, device=device)
            seconds = timed(lambda s=send, r=recv: _nccl_step(s, r, nxt, prv), device, iters, max(1, iters // 10))
            wrong = torch.tensor([int((recv != _pattern(n, prv, device)).sum())], device=device)
            dist.all_reduce(wrong)
            rows.append({"bytes": b, "us_per_step": seconds * 1e6, "wrong_elements": int(wrong), "verified": int(wrong) == 0})
        if rank == 0:
            Path(out).write_text(json.dumps(rows))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_nccl(world: int, sizes: list[int], iters: int, timeout: float) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="nccl_ring_") as tmp:
        out = os.path.join(tmp, "rows.json")
        spawn_ranks(_nccl_rank, world, (sizes, iters, out), timeout, "nccl")
        return json.loads(Path(out).read_text())


# ---- the command ------------------------------------------------------------------------------------

def skipped(reason: str, size: str) -> dict:
    return {"schema": 1, "tool": "python -m ch4.nvshmem_put", "size": size, "skipped": reason, "rows": [], "verified": None}


def nvshmem_version(root: Path) -> str | None:
    """'3.4.5', from the headers the program was compiled against."""
    try:
        text = (root / "include" / "non_abi" / "nvshmem_version.h").read_text()
    except OSError:
        return None
    parts = [re.search(rf"#define NVSHMEM_VENDOR_{p}_VERSION\s+(\d+)", text) for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m[1] for m in parts) if all(parts) else None


def combine(s: dict | None, c: dict) -> dict:
    """One size: the NVSHMEM step (None when it did not run) beside NCCL's, the baseline."""
    ok = s is not None and s["verified"] and c["verified"]
    return {"bytes": c["bytes"], "nvshmem_us": s and s["us_per_step"], "nccl_us": c["us_per_step"],
            "nvshmem_gbps": s and s["bytes"] / s["us_per_step"] / 1e3, "nccl_gbps": c["bytes"] / c["us_per_step"] / 1e3,
            "nvshmem_blocks": s and s["blocks"], "nvshmem_verified": bool(s and s["verified"]),
            "nccl_verified": c["verified"],
            # a put whose data did not arrive intact earns no speedup
            "speedup_vs_nccl": c["us_per_step"] / s["us_per_step"] if ok else None}


def run(world: int, size: str, timeout: float) -> dict:
    import torch

    from harness.cuda_build import find_nvcc
    from harness.device import provenance

    cfg = SIZES[size]
    root, reason = find_nvshmem()
    if root is None:
        return skipped(reason, size)
    nvcc = find_nvcc()
    if nvcc is None:
        return skipped("nvcc not found (set CUDA_HOME or put nvcc on PATH): the NVSHMEM program is compiled at run time", size)
    major, minor = torch.cuda.get_device_capability(0)
    t0 = time.monotonic()
    exe = build(root, f"sm_{major}{minor}", nvcc)
    build_s = time.monotonic() - t0
    try:
        shmem, error = run_nvshmem(exe, root, world, cfg["bytes"], cfg["iters"], timeout), None
    except (RuntimeError, TimeoutError) as exc:   # the NCCL figures are still worth having
        shmem, error = [None] * len(cfg["bytes"]), f"{type(exc).__name__}: {exc}"
    nccl = run_nccl(world, cfg["bytes"], cfg["iters"], timeout)
    rows = [combine(s, c) for s, c in zip(shmem, nccl, strict=True)]
    return {"schema": 1, "tool": "python -m ch4.nvshmem_put", "world": world, "size": size, "config": cfg,
            "nvshmem_root": str(root), "nvshmem_version": nvshmem_version(root), "build_seconds": build_s,
            "nvshmem_error": error, "rows": rows,
            "verified": all(r["nvshmem_verified"] and r["nccl_verified"] for r in rows),
            "provenance": provenance(torch.device("cuda"), size=size, world=world, env=NO_MULTICAST_ENV)}


def render(r: dict) -> str:
    from harness.report import text_table

    if r.get("skipped"):
        return f"nvshmem_put: skipped: {r['skipped']}"
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    table = [[f"{x['bytes']:,}", num(x["nvshmem_us"], ".2f"), num(x["nccl_us"], ".2f"), num(x["nvshmem_gbps"], ".3g"),
              num(x["nccl_gbps"], ".3g"), "-" if x["speedup_vs_nccl"] is None else f"{x['speedup_vs_nccl']:.2f}x",
              f"{'yes' if x['nvshmem_verified'] else 'NO'} / {'yes' if x['nccl_verified'] else 'NO'}"] for x in r["rows"]]
    head = (f"ring of {r['world']} GPUs, one put per step (NVSHMEM {r.get('nvshmem_version') or '?'} from "
            f"{r['nvshmem_root']}, built in {r['build_seconds']:.0f} s)")
    lines = [head, text_table(["bytes", "nvshmem us", "nccl us", "nvshmem GB/s", "nccl GB/s", "vs nccl",
                               "verified (nvshmem / nccl)"], table)]
    if r.get("nvshmem_error"):
        lines.append(f"NVSHMEM did not run: {r['nvshmem_error']}")
    lines.append("all transfers verified" if r["verified"] else "NOT VERIFIED: see the table")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ch4.nvshmem_put", description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, help="GPUs in the ring (default: every visible one)")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--timeout", type=float, default=120, help="seconds before every process is killed")
    parser.add_argument("--build-only", action="store_true", help="only compile the NVSHMEM program (no GPU needed)")
    parser.add_argument("--arch", default="sm_90", help="target for --build-only (default sm_90)")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or - for stdout)")
    args = parser.parse_args(argv)
    if args.world is not None and args.world < 2:
        parser.error(f"--world must be at least 2 (got {args.world})")
    if not args.arch.startswith("sm_") or not args.arch[3:].isdigit():
        parser.error(f"--arch {args.arch!r}: write it like sm_90")
    if args.build_only:
        from harness.cuda_build import find_nvcc

        root, reason = find_nvshmem()
        nvcc = find_nvcc()
        if root is None or nvcc is None:
            print(f"nvshmem_put: skipped: {reason or 'nvcc not found'}")
            return 0
        try:
            print(build(root, args.arch, nvcc))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"nvshmem_put: {exc}", file=sys.stderr)
            return 1
        return 0
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    world = args.world if args.world is not None else visible
    if visible >= 2 and world > visible:
        parser.error(f"--world {world} needs {world} GPUs, {visible} visible")
    if visible < 2:
        report = skipped(f"needs 2+ CUDA GPUs, {visible} visible", args.size)
    else:
        try:
            report = run(world, args.size, args.timeout)
        except Exception as exc:
            print(f"nvshmem_put: failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                  file=sys.stderr)
            return 1
    try:
        emit(report, render, args.json)
    except OSError as exc:
        parser.error(f"cannot write {args.json}: {exc}")
    return 0 if report["verified"] in (True, None) else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # as from `timeout`: the PEs are killed on the way out
    sys.exit(main())
