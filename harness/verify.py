"""Is the optimized output the baseline's output?

An element passes when |out - ref| <= atol + rtol * |ref| (the rule of torch.allclose), computed
here in float64 on the reference's device. Shapes and dtypes must
match exactly, and any NaN or Inf fails. Tolerances follow the output's dtype:

    dtype            rtol     atol     why
    float64          1e-7     1e-7     reordered sums only
    float32          1e-4     1e-4     reordered sums; TF32 stays off unless an example says so
    float16          1e-2     1e-2     about 10 ulps at 1.0 (eps 9.8e-4)
    bfloat16         1.6e-2   1e-2     about 4 ulps at 1.0 (eps 3.9e-3)
    float8 (e4m3/e5m2) 1.25e-1 1.25e-1 one to two ulps
    integers, bool   exact

An example may widen them (``Example.tolerance``), and must say why in its file.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (1.6e-2, 1e-2),
    torch.float8_e4m3fn: (1.25e-1, 1.25e-1),
    torch.float8_e5m2: (1.25e-1, 1.25e-1),
}


def tolerance_for(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol); zero for integer and bool outputs, which must match exactly."""
    return TOLERANCES.get(dtype, (0.0, 0.0))


@dataclass
class Comparison:
    ok: bool
    reason: str = ""
    max_abs_err: float = 0.0
    rel_l2_err: float = 0.0
    rtol: float = 0.0
    atol: float = 0.0


def flatten(output) -> list[torch.Tensor]:
    """A variant returns a tensor, or a tuple/list/dict of them: compare leaf by leaf."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in flatten(item)]
    if isinstance(output, dict):
        return [t for key in sorted(output) for t in flatten(output[key])]
    raise TypeError(f"a variant must return tensors, got {type(output).__name__}")


def snapshot(output) -> list[torch.Tensor]:
    """Copies taken right after a call: a variant may hand back a buffer it reuses next time."""
    return [t.detach().clone() for t in flatten(output)]


def compare(out: list[torch.Tensor], ref: list[torch.Tensor], tolerance: tuple[float, float] | None = None) -> Comparison:
    if len(out) != len(ref):
        return Comparison(False, f"returned {len(out)} tensors, the baseline {len(ref)}")
    worst = Comparison(True)
    for i, (o, r) in enumerate(zip(out, ref, strict=True)):
        where = f"output {i}: " if len(ref) > 1 else ""
        if o.shape != r.shape:
            return Comparison(False, f"{where}shape {tuple(o.shape)} != baseline {tuple(r.shape)}")
        if o.dtype != r.dtype:
            return Comparison(False, f"{where}dtype {o.dtype} != baseline {r.dtype}")
        rtol, atol = tolerance or tolerance_for(r.dtype)
        o64, r64 = o.detach().to(r.device, torch.float64), r.detach().to(torch.float64)
        if not bool(torch.isfinite(r64).all()):
            return Comparison(False, f"{where}the baseline itself produced NaN/Inf", rtol=rtol, atol=atol)
        finite = torch.isfinite(o64)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            return Comparison(False, f"{where}{bad} NaN/Inf elements (never written, or overflow)", rtol=rtol, atol=atol)
        diff = (o64 - r64).abs()
        max_abs = float(diff.max()) if diff.numel() else 0.0
        rel_l2 = float(diff.norm() / r64.norm().clamp_min(1e-30)) if diff.numel() else 0.0
        bad = diff > atol + rtol * r64.abs()
        if bool(bad.any()):
            idx = int(bad.flatten().nonzero()[0])
            return Comparison(
                False,
                f"{where}{int(bad.sum())} of {bad.numel()} elements differ beyond rtol={rtol:g}, atol={atol:g}; "
                f"first at flat index {idx}: {float(o64.flatten()[idx]):.6g} vs {float(r64.flatten()[idx]):.6g}",
                max_abs, rel_l2, rtol, atol,
            )
        if max_abs >= worst.max_abs_err:
            worst = Comparison(True, "", max_abs, max(rel_l2, worst.rel_l2_err), rtol, atol)
    return worst


def poison_allocator(device: torch.device, nbytes: int) -> None:
    """Leave NaN in the memory the next allocation of this size will get.

    PyTorch's CUDA caching allocator hands a freed block to the next request of the same size, so an
    output allocated with torch.empty and never written then reads as NaN and fails, instead of
    silently holding the baseline's answer from the previous call.
    """
    if device.type == "cuda" and nbytes > 0:
        torch.full(((nbytes + 3) // 4,), float("nan"), dtype=torch.float32, device=device)
