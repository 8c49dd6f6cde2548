"""CUTLASS GEMMs as a Python module, built for the GPU at hand on first use (needs the nvidia-cutlass wheel).

Call them through `gemm(name, a, b)`, which checks every precondition here, in Python, before the extension
sees the tensors. On the H200 (torch 2.11, nvcc 13.0) a C++ exception thrown out of this extension, such as
its own TORCH_CHECK on a bad shape, killed the process with a segfault instead of raising (device call 4 of
2026-11-30; the other chapters' extensions raise normally; the cause is not found). So bad input must never
reach the extension's checks: they stay as a last line, and these raise a one-line error first.
"""
import functools
from pathlib import Path

import torch

from harness.cuda_build import load_dir

ALIGN = 8  # K and N in elements: 16-byte rows for TMA (sm_90) and cp.async (sm_80)
KERNELS = {"gemm_sm80": (8, 0), "gemm_sm90": (9, 0)}  # name -> the compute capability it needs (sm_90: exactly)


@functools.cache
def _capability(device: torch.device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)   # asked once per device: gemm() is on the timed path


def ext():
    """The compiled module: every *.cu here plus binding.cpp (see harness/cuda_build.py)."""
    return load_dir(Path(__file__).parent)


def check(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    """Raise ValueError (bad arguments) or RuntimeError (this GPU cannot run the kernel) before any C++ runs."""
    if name not in KERNELS:
        raise ValueError(f"no CUTLASS kernel {name!r}; there are {', '.join(KERNELS)}")
    for label, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.bfloat16 or t.dim() != 2 or not t.is_cuda:
            raise ValueError(f"{name}: {label} must be a 2-D bfloat16 CUDA tensor")
        if not t.is_contiguous():
            raise ValueError(f"{name}: {label} must be contiguous (row-major, K-major)")
    if a.device != b.device:
        raise ValueError(f"{name}: a and b are on different devices")
    (m, k), (n, kb) = a.shape, b.shape
    if k != kb:
        raise ValueError(f"{name}: a is {tuple(a.shape)} and b is {tuple(b.shape)}: K differs (C = a @ b.T)")
    if k % ALIGN or n % ALIGN:
        raise ValueError(f"{name}: K and N must be multiples of {ALIGN} (16-byte rows), got K = {k}, N = {n}")
    if max(m, n, k) >= 2**31:
        raise ValueError(f"{name}: sizes must fit in int32")
    need, have = KERNELS[name], _capability(a.device)
    if have < need or (need == (9, 0) and have != need):
        raise RuntimeError(f"{name} needs compute capability {'exactly ' if need == (9, 0) else ''}"
                           f"{need[0]}.{need[1]}; this GPU has {have[0]}.{have[1]}")


def gemm(name: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = a @ b.T in bf16 through the CUTLASS kernel `name`, every precondition checked first."""
    check(name, a, b)
    return getattr(ext(), name)(a, b)
