"""Start N ranks on this node, each in its own process, with a deadline after which every rank is killed.

`spawn(fn, args, world, timeout, backend)` runs `fn(rank, *args)` in `world` new processes (spawned; forked
where the caller asks, as the CPU tests do) and returns when all
have finished; a rank that raises ends the others (torch.multiprocessing's join terminates them) and the
error is raised here; past `timeout` seconds every rank is killed and TimeoutError is raised. So a hung
collective costs at most the deadline and leaves no process behind. `init(rank, ...)` joins the process
group through a file store (no port to pick). The children inherit the environment, with NVLink multicast
(NVLS) kept off for NCCL, symmetric memory and NVSHMEM.
"""
from __future__ import annotations

import os
import time
from datetime import timedelta

NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def spawn(fn, args: tuple, world: int, timeout: float, backend: str, start_method: str = "spawn") -> None:
    import torch.multiprocessing as mp

    extra = dict(NO_MULTICAST)
    if backend == "gloo" and "GLOO_SOCKET_IFNAME" not in os.environ:
        extra["GLOO_SOCKET_IFNAME"] = "lo"   # the loopback interface: ranks on one node, no network needed
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        ctx = mp.start_processes(fn, args=args, nprocs=world, join=False, start_method=start_method)
        deadline = time.monotonic() + timeout
        try:
            while not ctx.join(timeout=0.5):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no result within {timeout:g} s")
        except BaseException:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
            for p in ctx.processes:
                p.join(5)
            raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def init(rank: int, world: int, backend: str, device_type: str, store: str, timeout: float):
    """Join the process group; returns this rank's device (GPU `rank` on CUDA)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # fixed: ranks share the machine's cores
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout), **kwargs)
    return device
