"""Measuring the ceilings of the device at hand, each through harness.timing.measure.

Every bandwidth counts every byte a call moves: a copy reads N bytes and writes N bytes, so it moves 2N.
(Counting only the bytes read halves the figure: that is how a copy test comes to report "51% of peak".)
Peer (GPU-to-GPU) figures are the exception: they count the bytes that cross the link, once, as a link's
bandwidth is quoted.
Each section adds its figures to a Recorder and saves them, so a section that fails costs only itself.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from functools import partial as partial_fn
from typing import Callable

import torch
import torch.nn.functional as F

from harness.device import provenance, synchronize
from harness.timing import TimingConfig, measure

try:
    import triton
    import triton.language as tl
except ImportError:  # the CPU path needs no Triton
    triton = None

MiB = 1 << 20


@dataclass(frozen=True)
class Plan:
    """Sizes and timing for one run: --quick trades precision for time."""
    quick: bool
    device_bytes: int          # each buffer of the device-memory tests (far larger than any L2)
    host_bytes: int            # each buffer of the host <-> device and peer tests
    cubes: tuple[int, ...]     # square matmul shapes searched
    rectangles: tuple[tuple[int, int, int], ...]
    fp32_max: int              # largest cube for FP32 without TF32 (slow: 8192^3 takes ~20 ms on an H100)
    copy_configs: tuple[tuple[int, int], ...]   # (BLOCK, num_warps) tried for the Triton kernels
    l2_passes: int
    compile: bool
    timing: TimingConfig


def make_plan(device: torch.device, quick: bool, compile_block: bool = True) -> Plan:
    if device.type != "cuda":
        return Plan(quick, (128 if quick else 1024) * MiB, 0, (512, 1024) if quick else (1024, 2048), (), 2048, (),
                    0, compile_block and not quick, _timing(quick))
    if quick:
        return Plan(True, 256 * MiB, 64 * MiB, (4096, 8192), (), 8192, ((8192, 8),), 64, False, _timing(True))
    return Plan(False, 1024 * MiB, 256 * MiB, (4096, 6144, 8192, 12288, 16384),
                ((8192, 8192, 16384), (16384, 16384, 8192), (4096, 16384, 16384)), 8192,
                ((4096, 4), (8192, 8), (16384, 16)), 256, compile_block, _timing(False))


def _timing(quick: bool) -> TimingConfig:
    # Each sample ends with a device-wide synchronize before its closing event, which adds the host's
    # wake-up time to the sample; grouping calls into samples of a few ms makes that a fraction of a percent.
    if quick:
        return TimingConfig(warmup_s=0.02, min_warmup_calls=2, min_samples=5, min_time_s=0.02, max_time_s=0.25,
                            max_rel_error=0.02, min_sample_s=2e-3)
    return TimingConfig(warmup_s=0.1, max_time_s=1.0, min_sample_s=5e-3)


@dataclass
class Recorder:
    """The peaks document as it grows; `save` is called after every section."""
    doc: dict
    save: Callable[[dict], None] = lambda doc: None
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)

    def figure(self, name: str, value: float, unit: str, what: str, how: str, datasheet: str | None = None) -> None:
        self.doc["figures"][name] = {"value": value, "unit": unit, "what": what, "how": how, "datasheet": datasheet}
        self.log(f"  {what}: {value:.4g} {unit}  ({how})")

    def skip(self, name: str, reason: str) -> None:
        self.doc["skipped"][name] = reason
        self.log(f"  {name}: skipped ({reason})")


def _gbps(nbytes: int, ms: float) -> float:
    return nbytes / (ms / 1e3) / 1e9


def _time(fn: Callable[[], object], device: torch.device, plan: Plan) -> float:
    """Median milliseconds per call."""
    return measure(fn, device, plan.timing).median_ms


# --- device memory and L2 ------------------------------------------------------------------------------------

if triton is not None:
    @triton.jit
    def copy_kernel(src, dst, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(dst + offs, tl.load(src + offs, mask=mask), mask=mask)

    @triton.jit
    def read_kernel(src, partial, n, BLOCK: tl.constexpr):
        # Reads every element; writes one float per program, so that the loads cannot be optimized away.
        pid = tl.program_id(0)
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(src + offs, mask=offs < n, other=0.0)
        tl.store(partial + pid, tl.sum(x, axis=0))

    @triton.jit
    def fill_kernel(dst, value, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        tl.store(dst + offs, tl.zeros([BLOCK], dtype=tl.float32) + value, mask=offs < n)

    @triton.jit
    def l2_copy_kernel(src, dst, n_blocks, passes, BLOCK: tl.constexpr):
        # Each pass shifts every program to the next block, so no load repeats an address its program just
        # read; ".cg" caches in L2 only, so the L1 cannot serve them. The buffers fit in L2: this is L2 traffic.
        pid = tl.program_id(0)
        for r in range(passes):
            block = (pid + r) % n_blocks
            offs = block.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
            tl.store(dst + offs, tl.load(src + offs, cache_modifier=".cg"), cache_modifier=".cg")


def memory(device: torch.device, plan: Plan, rec: Recorder) -> None:
    n = plan.device_bytes // 4
    src = torch.rand(n, device=device)
    dst = torch.empty_like(src)
    where = "device memory" if device.type == "cuda" else "memory"
    size = f"{plan.device_bytes // MiB} MiB fp32 buffers"
    found: dict[str, dict[str, float]] = {
        "read": {"torch sum": _gbps(4 * n + 4, _time(lambda: src.sum(), device, plan))},
        "write": {"torch fill_": _gbps(4 * n, _time(lambda: dst.fill_(1.0), device, plan))},
        "copy": {"torch copy_": _gbps(8 * n, _time(lambda: dst.copy_(src), device, plan))},
    }
    if device.type == "cuda" and triton is None:
        rec.notes.append("Triton missing: device memory measured through torch only")
    elif device.type == "cuda":
        for block, warps in plan.copy_configs:
            grid = (triton.cdiv(n, block),)
            partial = torch.empty(grid[0], device=device)
            tag = f"triton BLOCK={block} num_warps={warps}"
            check = check_kernels(src, dst, partial, block, warps)
            if check:
                rec.notes.append(f"{tag} gave a wrong answer ({check}); not timed")
                continue
            cfg = dict(BLOCK=block, num_warps=warps)
            found["read"][tag] = _gbps(4 * n + 4 * grid[0], _time(
                partial_fn(read_kernel[grid], src, partial, n, **cfg), device, plan))
            found["write"][tag] = _gbps(4 * n, _time(partial_fn(fill_kernel[grid], dst, 1.0, n, **cfg), device, plan))
            found["copy"][tag] = _gbps(8 * n, _time(partial_fn(copy_kernel[grid], src, dst, n, **cfg), device, plan))
    rec.doc["details"]["memory_candidates_gbps"] = found
    counted = {"read": "bytes read", "write": "bytes written", "copy": "bytes read + bytes written"}
    for kind, cands in found.items():
        best = max(cands, key=cands.get)
        rec.figure(f"memory_{kind}_gbps", cands[best], "GB/s", f"{where} {kind} ({counted[kind]})",
                   f"best of {len(cands)}: {best}, {size}", "memory_gbps")


def check_kernels(src: torch.Tensor, dst: torch.Tensor, partial: torch.Tensor, block: int, warps: int) -> str:
    """Run each Triton kernel once and compare with torch: '' when all agree, else what went wrong."""
    n = src.numel()
    grid = (triton.cdiv(n, block),)
    dst.fill_(float("nan"))
    copy_kernel[grid](src, dst, n, BLOCK=block, num_warps=warps)
    if not torch.equal(dst, src):
        return "copy differs from its source"
    fill_kernel[grid](dst, 3.0, n, BLOCK=block, num_warps=warps)
    if not bool((dst == 3.0).all()):
        return "fill left other values"
    read_kernel[grid](src, partial, n, BLOCK=block, num_warps=warps)
    total, ref = float(partial.double().sum()), float(src.double().sum())
    if abs(total - ref) > 1e-4 * abs(ref) + 1e-3:
        return f"read-kernel sum {total:.6g} != {ref:.6g}"
    return ""


def l2(device: torch.device, plan: Plan, rec: Recorder) -> None:
    if device.type != "cuda":
        return rec.skip("l2_copy_gbps", "GPU only")
    if triton is None:
        return rec.skip("l2_copy_gbps", "needs Triton")
    l2_bytes = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0)
    if not l2_bytes:
        return rec.skip("l2_copy_gbps", "the device reports no L2 size")
    best, how = 0.0, ""
    for block, warps in ((1024, 4), (2048, 8)) if not plan.quick else ((2048, 8),):
        n_blocks = max(1, l2_bytes // 8 // 4 // block)   # each buffer an eighth of L2: both fit with room
        n = n_blocks * block
        src = torch.rand(n, device=device)
        dst = torch.full_like(src, float("nan"))
        l2_copy_kernel[(n_blocks,)](src, dst, n_blocks, 1, BLOCK=block, num_warps=warps)
        if not torch.equal(dst, src):
            rec.notes.append(f"L2 kernel BLOCK={block} gave a wrong copy; not timed")
            continue
        ms = _time(partial_fn(l2_copy_kernel[(n_blocks,)], src, dst, n_blocks, plan.l2_passes, BLOCK=block,
                              num_warps=warps), device, plan)
        gbps = _gbps(8 * n * plan.l2_passes, ms)
        if gbps > best:
            best, how = gbps, (f"triton, 2 x {4 * n / MiB:.1f} MiB (L2 {l2_bytes / MiB:.0f} MiB), "
                               f"{plan.l2_passes} passes, BLOCK={block} num_warps={warps}")
    if best:
        rec.figure("l2_copy_gbps", best, "GB/s", "L2 copy (bytes read + bytes written)", how)


# --- matrix units --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def fp32_matmul_precision(mode: str):
    """'highest' keeps FP32 on the CUDA cores; 'high' lets cuBLAS use TF32 tensor cores. Restored after."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(mode)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def _matmul_fn(dtype_name: str, m: int, n: int, k: int, device: torch.device,
               fast_accum: bool = False) -> Callable[[], object]:
    """One dense product of random operands (zeros would draw less power and flatter the clocks)."""
    if dtype_name == "fp8":
        a = torch.randn(m, k, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(n, k, device=device).to(torch.float8_e4m3fn).t()   # _scaled_mm wants B column-major
        one = torch.ones((), device=device)                                 # per-tensor scales
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16,
                                        use_fast_accum=fast_accum)
    dtype = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    c = torch.empty(m, n, device=device, dtype=dtype)
    return lambda: torch.mm(a, b, out=c)


def matmul(device: torch.device, plan: Plan, rec: Recorder) -> None:
    dtypes = ["fp32"]
    if device.type == "cuda":
        dtypes += ["tf32", "fp16", "bf16"]
        if torch.cuda.get_device_capability(device) >= (8, 9) and hasattr(torch, "float8_e4m3fn"):
            dtypes.append("fp8")
        else:
            rec.skip("matmul_fp8_tflops", "fp8 matmul needs sm_89 or newer")
    shapes_seen = rec.doc["details"].setdefault("matmul_shapes_tflops", {})
    for dt in dtypes:
        shapes = [(s, s, s) for s in plan.cubes] + list(plan.rectangles)
        if dt == "fp32":
            shapes = [s for s in shapes if max(s) <= plan.fp32_max]
        # FP8: with and without fast accumulation (fewer promotions to FP32, faster on Hopper, less exact).
        accums = (False, True) if dt == "fp8" else (False,)
        results: dict[str, float] = {}
        with fp32_matmul_precision("high" if dt == "tf32" else "highest"):
            for (m, n, k), fast in [(s, f) for s in shapes for f in accums]:
                label = f"{m}x{n}x{k}" + (" fast_accum" if fast else "")
                try:
                    fn = _matmul_fn(dt, m, n, k, device, fast)
                    ms = _time(fn, device, plan)
                    out = fn()
                    if not bool(torch.isfinite(out).all()):
                        raise RuntimeError("non-finite output")
                except Exception as exc:  # OOM, or a shape or dtype this cuBLAS refuses: the search goes on
                    results[label] = None
                    rec.notes.append(f"{dt} {label}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}")
                    continue
                finally:
                    fn = out = None
                results[label] = 2 * m * n * k / (ms / 1e3) / 1e12
        shapes_seen[dt] = results
        measured = {s: v for s, v in results.items() if v is not None}
        what = {"fp32": "FP32 matmul (no TF32)", "tf32": "TF32 matmul", "fp8": "FP8 e4m3 matmul (_scaled_mm)"}.get(
            dt, f"{dt.upper()} matmul")
        if not measured:
            rec.skip(f"matmul_{dt}_tflops", "no shape ran (see notes)")
            continue
        best = max(measured, key=measured.get)
        clock = f"; SM clock after: {_sm_clock_mhz(device)} MHz" if device.type == "cuda" else ""
        rec.figure(f"matmul_{dt}_tflops", measured[best], "TFLOP/s", f"{what}, best shape",
                   f"best of {len(measured)} shapes: {best} (MxNxK), sustained{clock}", dt)
        at = {s: v for s, v in measured.items() if s.startswith("8192x8192x8192")}
        if at:
            label = max(at, key=at.get)
            rec.figure(f"matmul_{dt}_8192_tflops", at[label], "TFLOP/s", f"{what}, 8192^3", label, dt)
        elif device.type == "cpu":
            rec.skip(f"matmul_{dt}_8192_tflops", "not run on the CPU: one call would take seconds")


# --- launches, host link, peers ------------------------------------------------------------------------------

LAUNCHES = 200   # back-to-back launches per timed call


def launch(device: torch.device, plan: Plan, rec: Recorder) -> None:
    if device.type != "cuda":
        return rec.skip("launch_us", "GPU only")
    x = torch.zeros(1, device=device)

    def eager():
        for _ in range(LAUNCHES):
            x.zero_()   # a one-element fill: the kernel itself takes about nothing

    eager_us = _time(eager, device, plan) * 1e3 / LAUNCHES
    rec.figure("launch_eager_us", eager_us, "us", "kernel launch, eager",
               f"{LAUNCHES} back-to-back one-element x.zero_(), per launch")
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):   # warm up outside the capture, as CUDA graphs require
        eager()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        eager()
    graph_us = _time(graph.replay, device, plan) * 1e3 / LAUNCHES
    rec.figure("launch_graph_us", graph_us, "us", "kernel launch, CUDA graph replay",
               f"one graph of {LAUNCHES} one-element x.zero_(), per kernel")


def host_link(device: torch.device, plan: Plan, rec: Recorder) -> None:
    if device.type != "cuda":
        return rec.skip("host_link_gbps", "GPU only")
    n = plan.host_bytes // 4
    dev = torch.rand(n, device=device)
    pageable = torch.ones(n)            # written once, so its pages are really there
    pinned = torch.ones(n).pin_memory()
    size = f"{plan.host_bytes // MiB} MiB"
    cases = {
        "h2d_pageable": lambda: dev.copy_(pageable),
        "h2d_pinned": lambda: dev.copy_(pinned, non_blocking=True),
        "d2h_pageable": lambda: pageable.copy_(dev),
        "d2h_pinned": lambda: pinned.copy_(dev, non_blocking=True),
    }
    for name, fn in cases.items():
        direction = "host -> device" if name.startswith("h2d") else "device -> host"
        kind = name.split("_")[1]
        rec.figure(f"{name}_gbps", _gbps(4 * n, _time(fn, device, plan)), "GB/s", f"{direction}, {kind}",
                   f"{size} copy_", "host_link_gbps")


PEER_LATENCY_BYTES = 8    # the small transfer whose round trip is the latency figure


def peers(device: torch.device, plan: Plan, rec: Recorder) -> None:
    """Every ordered GPU pair i -> j: copy engine, SM-driven copies (pull and push), and a small round trip.

    Copy engine: `dst.copy_(src)` between devices is a cudaMemcpyAsync on the source's stream (a DMA engine
    moves the bytes; with peer access on, straight over NVLink/PCIe, else staged through the host).
    Kernel-driven: a Triton copy kernel loads and stores every element itself; "pull" runs on GPU j reading
    GPU i's memory, "push" runs on GPU i writing into GPU j's memory (as NCCL's P2P transport does). Both
    need peer access. Each GB/s counts the bytes that cross the link once (N, not 2N). Latency: the round
    trip of an 8-byte copy i -> j -> i, from the host's view (launches and cross-device event waits included).
    """
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if count < 2:
        return rec.skip("p2p_gbps", f"needs 2 GPUs, {count} visible: not measured")
    n = plan.host_bytes // 4
    size = f"{plan.host_bytes // MiB} MiB"
    pairs = [(i, j) for i in range(count) for j in range(count) if i != j]
    access = {(i, j): torch.cuda.can_device_access_peer(i, j) for i, j in pairs}
    rec.doc["details"]["peer_access"] = {f"{i}->{j}": ok for (i, j), ok in access.items()}
    bufs = {i: torch.rand(n, device=torch.device("cuda", i)) for i in range(count)}
    sinks = {i: torch.empty(n, device=torch.device("cuda", i)) for i in range(count)}
    on_host = {i: b.cpu() for i, b in bufs.items()}   # what every copy must deliver
    for i, j in pairs:   # one copy each way first: torch enables peer access on the first cross-device copy
        sinks[j].copy_(bufs[i])
        if not torch.equal(sinks[j].cpu(), on_host[i]):
            rec.notes.append(f"copy GPU {i} -> GPU {j} gave a wrong result")
    for i, j in pairs:
        peer = access[(i, j)] and access[(j, i)]
        src, dst, src_dev, dst_dev = bufs[i], sinks[j], torch.device("cuda", i), torch.device("cuda", j)
        with torch.cuda.device(i):   # the copy runs on the source's stream: time it there
            gbps = _gbps(4 * n, _time(partial_fn(dst.copy_, src), src_dev, plan))
        rec.figure(f"p2p_{i}to{j}_gbps", gbps, "GB/s", f"GPU {i} -> GPU {j}, copy engine",
                   f"{size} copy_, peer access {'on' if peer else 'off (staged via host)'}", "gpu_link_gbps")
        if not peer:
            rec.skip(f"p2p_kernel_{i}to{j}_gbps", "no peer access between these GPUs: a kernel cannot reach the other's memory")
        elif triton is None:
            rec.skip(f"p2p_kernel_{i}to{j}_gbps", "needs Triton")
        else:
            for way, run_on in (("pull", j), ("push", i)):
                try:
                    _kernel_copy(way, i, j, run_on, src, dst, on_host[i], plan, rec)
                except Exception as exc:   # a Triton that refuses a peer pointer costs this figure only
                    rec.skip(f"p2p_kernel_{way}_{i}to{j}_gbps", f"failed: {type(exc).__name__}: {str(exc)[:200]}")
        small_i = torch.zeros(PEER_LATENCY_BYTES // 4, device=src_dev)
        small_j = torch.zeros(PEER_LATENCY_BYTES // 4, device=dst_dev)

        def round_trip(a=small_i, b=small_j):
            b.copy_(a)   # on GPU i's stream; GPU j's stream waits for it
            a.copy_(b)   # on GPU j's stream; GPU i's stream waits for it

        with torch.cuda.device(i):
            us = _time(round_trip, src_dev, plan) * 1e3
        rec.figure(f"peer_latency_{i}to{j}_us", us, "us", f"GPU {i} -> GPU {j} -> GPU {i}, round trip",
                   f"{PEER_LATENCY_BYTES}-byte copy_ there and back, per round trip (launches and event waits included)")
    for i, j in pairs:
        if i < j:
            _bidirectional(i, j, bufs, sinks, n, plan, rec)


def _kernel_copy(way: str, i: int, j: int, run_on: int, src, dst, expected, plan: Plan, rec: Recorder) -> None:
    block, warps = plan.copy_configs[-1]
    grid = (triton.cdiv(src.numel(), block),)
    with torch.cuda.device(run_on):
        dst.fill_(float("nan"))
        copy_kernel[grid](src, dst, src.numel(), BLOCK=block, num_warps=warps)
        if not torch.equal(dst.cpu(), expected):
            rec.notes.append(f"{way} kernel GPU {i} -> GPU {j} gave a wrong copy; not timed")
            return
        ms = _time(partial_fn(copy_kernel[grid], src, dst, src.numel(), BLOCK=block, num_warps=warps),
                   torch.device("cuda", run_on), plan)
    where = f"on GPU {j}, loads from GPU {i}" if way == "pull" else f"on GPU {i}, stores to GPU {j}"
    rec.figure(f"p2p_kernel_{way}_{i}to{j}_gbps", _gbps(4 * src.numel(), ms), "GB/s",
               f"GPU {i} -> GPU {j}, SM copy kernel ({way})",
               f"{src.numel() * 4 // MiB} MiB, triton copy BLOCK={block} num_warps={warps} {where}", "gpu_link_gbps")


def _bidirectional(i: int, j: int, bufs: dict, sinks: dict, n: int, plan: Plan, rec: Recorder) -> None:
    """Both directions at once. copy_ runs on the source's current stream and fences the destination's current
    stream, so each direction gets private streams on both devices: neither copy waits for the other."""
    dev = {k: torch.device("cuda", k) for k in (i, j)}
    streams = {(a, b): (torch.cuda.Stream(dev[a]), torch.cuda.Stream(dev[b])) for a, b in ((i, j), (j, i))}

    def both():
        for (a, b), (on_src, on_dst) in streams.items():
            with torch.cuda.stream(on_src), torch.cuda.stream(on_dst):
                sinks[b].copy_(bufs[a])

    def settle():
        for k in (i, j):
            torch.cuda.synchronize(dev[k])

    reps = 3 if plan.quick else 10
    both()
    settle()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            both()
        settle()
        best = min(best, (time.perf_counter() - t0) / reps)
    rec.figure(f"peer_bidir_{i}and{j}_gbps", 2 * 4 * n / best / 1e9, "GB/s", f"GPU {i} <-> GPU {j}, both directions at once",
               f"{plan.host_bytes // MiB} MiB copy_ each way, concurrently on private streams; best of 3 x {reps} "
               "by the host clock; the sum of both directions")


# --- torch.compile on a small transformer block --------------------------------------------------------------

class Block(torch.nn.Module):
    """Pre-norm attention + MLP: the unit torch.compile is usually pointed at."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.qkv, self.proj = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)
        self.up, self.down = torch.nn.Linear(dim, 4 * dim), torch.nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


def compiled_block(device: torch.device, plan: Plan, rec: Recorder) -> None:
    if not plan.compile:
        return rec.skip("compile", "skipped in --quick or with --no-compile: compiling takes tens of seconds")
    cuda = device.type == "cuda"
    batch, seq, dim, heads = (8, 1024, 1024, 16) if cuda else (2, 128, 256, 4)
    dtype = torch.bfloat16 if cuda else torch.float32
    torch.manual_seed(0)
    block = Block(dim, heads).to(device, dtype).eval()
    x = torch.randn(batch, seq, dim, device=device, dtype=dtype)
    with torch.no_grad():
        eager_ms = _time(lambda: block(x), device, plan)
        compiled = torch.compile(block)
        t0 = time.perf_counter()
        out = compiled(x)
        synchronize(device)
        compile_s = time.perf_counter() - t0
        ref = block(x).double()
        err = float((out.double() - ref).norm() / ref.norm())
        # Fusion changes where bf16 rounding happens, so elementwise ulps are the wrong test: relative L2 is.
        if not (torch.isfinite(out).all() and err < (2e-2 if dtype == torch.bfloat16 else 1e-4)):
            return rec.skip("compile", f"compiled block does not match eager (relative L2 error {err:.3g})")
        compiled_ms = _time(lambda: compiled(x), device, plan)
    shape = f"batch {batch}, seq {seq}, dim {dim}, {heads} heads, {str(dtype).replace('torch.', '')}, no_grad"
    rec.figure("compile_time_s", compile_s, "s", "torch.compile: first call (compile + run)", shape)
    rec.figure("compile_eager_ms", eager_ms, "ms", "transformer block, eager", shape)
    rec.figure("compile_compiled_ms", compiled_ms, "ms", "transformer block, compiled", shape)
    rec.figure("compile_speedup", eager_ms / compiled_ms, "x", "torch.compile speedup (run time only)", shape)


def _sm_clock_mhz(device: torch.device) -> int | str:
    try:  # through NVML; where it is missing the figure simply goes without its clock
        return torch.cuda.clock_rate(device)
    except Exception:
        return "unknown"


def matmul_burst(device: torch.device, plan: Plan, rec: Recorder) -> None:
    """A short burst after an idle second, beside the sustained figures above.

    Under a long run of matrix products a GPU may lower its clocks to stay inside its power limit, so the
    sustained rate (what a long training step sees) can sit well under what a few products reach.
    Both are real; neither is the other.
    """
    if device.type != "cuda":
        rec.skip("matmul_bf16_burst_tflops", "GPU only")
        return
    n, calls = (4096, 5) if plan.quick else (8192, 10)
    fn = _matmul_fn("bf16", n, n, n, device)
    fn()
    torch.cuda.synchronize(device)
    time.sleep(1.0)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    ms = start.elapsed_time(end) / calls
    rec.figure("matmul_bf16_burst_tflops", 2 * n**3 / (ms / 1e3) / 1e12, "TFLOP/s", f"BF16 matmul, {n}^3, burst",
               f"{calls} products after 1 s idle, one event pair; SM clock after: {_sm_clock_mhz(device)} MHz", "bf16")


SECTIONS = (memory, l2, matmul, matmul_burst, launch, host_link, peers, compiled_block)
P2P_PREFIXES = ("p2p_", "peer_")   # every figure and skip the peers section writes starts with one of these


def merge_p2p(into: dict, p2p: dict) -> dict:
    """A peaks document with its P2P figures replaced by those of a --p2p-only run (whose provenance is kept
    beside the document's own: the two may come from different runs, or different machines of one model)."""
    out = json.loads(json.dumps(into))
    for table in ("figures", "skipped"):
        out[table] = {k: v for k, v in out.get(table, {}).items() if not k.startswith(P2P_PREFIXES) and k != "peers"}
        out[table].update(p2p.get(table, {}))
    out.setdefault("details", {})["p2p_provenance"] = p2p.get("provenance")
    out["details"]["peer_access"] = p2p.get("details", {}).get("peer_access")
    out["notes"] = list(out.get("notes", [])) + [f"P2P: {n}" for n in p2p.get("notes", [])]
    return out


def run(device: torch.device, plan: Plan, save: Callable[[dict], None], log: Callable[[str], None] = print,
        sections: tuple = SECTIONS) -> dict:
    """Every section in turn; the document is saved after each, and a failing section is recorded, not fatal."""
    doc = {"schema": 1, "quick": plan.quick, "provenance": provenance(device, quick=plan.quick),
           "figures": {}, "skipped": {}, "details": {"section_seconds": {}}, "notes": []}
    if sections != SECTIONS:
        doc["sections"] = [s.__name__ for s in sections]   # a partial run says which parts it holds
    rec = Recorder(doc, save, log)
    for section in sections:
        log(f"{section.__name__} ...")
        t0 = time.perf_counter()
        try:
            section(device, plan, rec)
        except Exception as exc:  # one broken section (OOM, a driver without P2P, ...) must not lose the rest
            first_line = (str(exc).splitlines() or [""])[0][:300]
            rec.skip(section.__name__, f"failed: {type(exc).__name__}: {first_line}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        doc["details"]["section_seconds"][section.__name__] = round(time.perf_counter() - t0, 2)
        doc["notes"] = rec.notes
        save(doc)
    return doc
