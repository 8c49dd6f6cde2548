"""The worker processes of `ch15.disaggregated`: one engine colocated, or a prefill worker that hands each
request's KV pages through CUDA IPC (`ch15/kv_handoff.py`) to a decode worker. Each is started by the router
(spawn context) and exits on its own when the router is gone (PR_SET_PDEATHSIG and a check every loop) or past
its deadline.
"""
from __future__ import annotations

import os
import queue
import signal
import time
import traceback

import torch

from inference.scheduler import Request

PREFILL_KV_SHARE = 0.25  # of the KV budget: the prefill pool holds prompts in flight and hand-offs not yet pulled
PAGE_SIZE = 16


def _guard(parent_pid: int) -> None:
    """Die with the parent: the kernel sends SIGKILL when it exits (Linux); the loops also check."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _alive(parent_pid: int, deadline: float) -> None:
    if os.getppid() != parent_pid or time.monotonic() > deadline:
        os._exit(1)


def _setup(spec: dict):
    from inference.bench import build_model, warmup
    if spec["device"].startswith("cuda"):
        torch.cuda.set_device(torch.device(spec["device"]).index or 0)
    torch.set_num_threads(spec["threads"])
    dtype = torch.bfloat16 if spec["device"].startswith("cuda") else torch.float32
    model = build_model(spec["config"], spec["device"], dtype, spec["seed"])
    warmup(model, model.cfg.vocab)
    return model


def worker(role: str, spec: dict, inbox, handoff, release, results, parent_pid: int, deadline: float) -> None:
    """One worker: role 'colocated' (the whole engine), 'prefill' or 'decode'."""
    _guard(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the router stops the workers
    try:
        {"colocated": _colocated, "prefill": _prefill, "decode": _decode}[role](
            spec, inbox, handoff, release, results, lambda: _alive(parent_pid, deadline))
    except Exception:
        results.put(("error", role, traceback.format_exc()))
        os._exit(1)


def _request(msg: dict, max_new: int | None = None) -> Request:
    return Request(msg["rid"], msg["prompt"], max_new or msg["max_new_tokens"], arrival=msg["arrival"])


def _done(r: Request, **extra) -> tuple:
    return ("done", {"rid": r.rid, "output": r.output, "first_token_time": r.first_token_time,
                     "finish_time": r.finish_time, "preemptions": r.preemptions, **extra})


def _colocated(spec, inbox, _handoff, _release, results, check) -> None:
    from inference.generate import new_paged_cache
    from inference.scheduler import Engine
    model = _setup(spec)
    engine = Engine(model, new_paged_cache(model, spec["kv_tokens"] // PAGE_SIZE, PAGE_SIZE), max_batch=spec["max_batch"],
                    token_budget=spec["token_budget"], clock=time.monotonic)
    results.put(("ready", "colocated", os.getpid()))
    while True:
        check()
        try:
            msg = inbox.get(timeout=0.005) if not engine.has_work() else inbox.get_nowait()
            if msg is None:
                return
            engine.add(_request(msg))
            continue  # drain every arrival before the next step
        except queue.Empty:
            pass
        for r in engine.step() if engine.has_work() else []:
            results.put(_done(r))


def _prefill(spec, inbox, handoff, release, results, check) -> None:
    from ch15.kv_handoff import HoldingKVCache, PrefillEngine, share_pool
    model = _setup(spec)
    p = model.output.weight
    n_pages = max(1, int(spec["kv_tokens"] * PREFILL_KV_SHARE) // PAGE_SIZE)
    cache = HoldingKVCache(model.cfg, n_pages, PAGE_SIZE, p.dtype, p.device)
    share_pool(cache)
    engine = PrefillEngine(model, cache, max_batch=spec["max_batch"], token_budget=spec["token_budget"],
                           clock=time.monotonic)
    handoff.put(("pool", cache.k, cache.v))  # once: a CUDA IPC handle (or shared memory) for the whole pool
    results.put(("ready", "prefill", os.getpid()))
    max_new, stopping = {}, False
    while True:
        check()
        while True:  # pages the decode worker has pulled
            try:
                rid = release.get_nowait()
            except queue.Empty:
                break
            if rid is None:  # the decode worker has dropped its handle on our pool: we may exit
                return
            cache.release(rid)
        try:
            msg = inbox.get(timeout=0.005) if not engine.has_work() else inbox.get_nowait()
            if msg is None:  # finish the prompts in flight, then tell the decode worker
                stopping = True
            else:
                max_new[msg["rid"]] = msg["max_new_tokens"]
                engine.add(_request(msg, max_new=1))
                continue
        except queue.Empty:
            pass
        if stopping and not engine.has_work():
            handoff.put(None)
            stopping = False  # sent once: now only the decode worker's goodbye (above) ends the loop
        for r in engine.step() if engine.has_work() else []:
            handoff.put({"rid": r.rid, "prompt": r.prompt, "first": r.output[0], "arrival": r.arrival,
                         "first_token_time": r.first_token_time, "max_new_tokens": max_new.pop(r.rid),
                         "pages": cache.held[r.rid], "preemptions": r.preemptions})


def _decode(spec, _inbox, handoff, release, results, check) -> None:
    from ch15.kv_handoff import adopt, copy_pages, pages_equal
    from inference.generate import new_paged_cache
    from inference.scheduler import Engine
    model = _setup(spec)
    n_pages = max(1, int(spec["kv_tokens"] * (1 - PREFILL_KV_SHARE)) // PAGE_SIZE)
    engine = Engine(model, new_paged_cache(model, n_pages, PAGE_SIZE), max_batch=spec["max_batch"],
                    token_budget=spec["token_budget"], clock=time.monotonic)
    while True:
        check()
        try:
            msg = handoff.get(timeout=0.05)
            break
        except queue.Empty:
            pass
    _, src_k, src_v = msg
    results.put(("ready", "decode", os.getpid()))
    pending, transfer, stopping = [], {}, False
    while True:
        check()
        try:
            while True:
                msg = handoff.get(timeout=0.005) if not (engine.has_work() or pending) else handoff.get_nowait()
                if msg is None:
                    stopping = True
                    break
                pending.append(msg)
        except queue.Empty:
            pass
        while pending and len(engine.running) < spec["max_batch"]:
            m = pending[0]
            n = len(m["prompt"])
            # room for it and a page of growth per running decode, else the engine would preempt (and recompute
            # here) the request just adopted; it waits, its pages held on the prefill side
            if engine.cache.pages_needed(m["rid"], n + 1) + len(engine.running) > engine.cache.allocator.n_free():
                break
            pending.pop(0)
            t_adopt = time.monotonic()
            secs, nbytes = copy_pages(src_k, src_v, m["pages"], engine.cache, m["rid"], n)
            ok = pages_equal(src_k, src_v, m["pages"], engine.cache, m["rid"], n) if spec["verify_kv"] else None
            release.put(m["rid"])
            r = Request(m["rid"], m["prompt"], m["max_new_tokens"], arrival=m["arrival"], output=[m["first"]],
                        first_token_time=m["first_token_time"], preemptions=m["preemptions"])
            transfer[r.rid] = {"transfer_s": secs, "transfer_bytes": nbytes, "kv_equal": ok,
                               "handoff_wait_s": t_adopt - m["first_token_time"]}
            if r.done:  # one output token: nothing to decode
                engine.cache.free(r.rid)
                r.finish_time = r.first_token_time
                results.put(_done(r, **transfer.pop(r.rid)))
            else:
                adopt(engine, r)
        for r in engine.step() if engine.has_work() else []:
            results.put(_done(r, **transfer.pop(r.rid)))
        if stopping and not pending and not engine.has_work():
            del src_k, src_v  # drop the mapping of the prefill pool before the prefill worker exits
            release.put(None)
            return
