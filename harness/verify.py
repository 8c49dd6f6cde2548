"""Is the optimized output the baseline's output?

An element passes when |out - ref| <= atol + rtol * |ref| (the rule of torch.allclose), computed on
the reference's device, in float32 for float32 and narrower outputs (its rounding is far below any
tolerance) and float64 for float64. Chapter 20's verifier judges candidates with this same function. Shapes and dtypes must
match exactly, and any NaN or Inf fails; the whole output's relative L2 error may be at most REL_L2_FACTOR x
rtol. Tolerances follow the output's dtype:

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

import math
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


# Beside the element-wise rule: the whole output's relative L2 error may not exceed this multiple of rtol.
# Reordered sums and one-ulp roundings stay far below it; an output of zeros where every true value is
# smaller than atol (a wide softmax) does not.
REL_L2_FACTOR = 4.0


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
    """A variant returns a tensor, or a tuple/list/dict of them: compare leaf by leaf.

    Plain tensors only: a subclass could compute its values lazily, when they are read after the timer stopped.
    """
    if isinstance(output, torch.Tensor):
        if type(output) is not torch.Tensor and not isinstance(output, torch.nn.Parameter):
            raise TypeError(f"a variant must return plain tensors, got a {type(output).__name__} (a tensor subclass)")
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
        o, r = o.detach().to(r.device), r.detach()
        if not (r.is_floating_point() or r.is_complex()):  # integers and bool: exact, in their own dtype
            if torch.equal(o, r):
                continue
            return Comparison(False, f"{where}{int((o != r).sum())} of {r.numel()} elements differ (exact match required)")
        if r.is_complex():  # compare real and imaginary parts alike
            o, r = torch.view_as_real(o.resolve_conj()), torch.view_as_real(r.resolve_conj())
        if not bool(torch.isfinite(r).all()):
            return Comparison(False, f"{where}the baseline itself produced NaN/Inf", rtol=rtol, atol=atol)
        if torch.equal(o, r):  # bitwise equal: nothing to compute
            worst = Comparison(True, "", worst.max_abs_err, worst.rel_l2_err, rtol, atol)
            continue
        # float32 arithmetic (float64 for float64 outputs): its rounding, 6e-8 relative, is far below any tolerance
        work = torch.float64 if r.dtype == torch.float64 else torch.float32
        o_w, r_w = o.to(work), r.to(work)
        diff = torch.sub(o_w, r_w).abs_()                 # a new tensor: o_w may be the caller's own
        good = diff <= r_w.abs().mul_(rtol).add_(atol)    # False where out is NaN
        max_abs = float(diff.max()) if diff.numel() else 0.0
        rel_l2 = float(diff.norm() / r_w.norm().clamp_min(1e-30)) if diff.numel() else 0.0
        if not bool(good.all()) or not math.isfinite(max_abs):
            finite = torch.isfinite(o_w)
            if not bool(finite.all()):
                return Comparison(False, f"{where}{int((~finite).sum())} NaN/Inf elements (never written, or overflow)",
                                  rtol=rtol, atol=atol)
            bad = ~good
            idx = int(bad.flatten().nonzero()[0])
            return Comparison(
                False,
                f"{where}{int(bad.sum())} of {bad.numel()} elements differ beyond rtol={rtol:g}, atol={atol:g}; "
                f"first at flat index {idx}: {float(o_w.flatten()[idx]):.6g} vs {float(r_w.flatten()[idx]):.6g}",
                max_abs, rel_l2, rtol, atol,
            )
        if rel_l2 > REL_L2_FACTOR * rtol:  # every element within atol can still be all wrong (zeros for tiny values)
            return Comparison(False, f"{where}relative L2 error {rel_l2:.3g} is over {REL_L2_FACTOR:g} x rtol "
                                     f"({REL_L2_FACTOR * rtol:.3g}) although each element is within tolerance",
                              max_abs, rel_l2, rtol, atol)
        if max_abs >= worst.max_abs_err:
            worst = Comparison(True, "", max_abs, max(rel_l2, worst.rel_l2_err), rtol, atol)
    return worst


def poison_allocator(device: torch.device, sizes: list[int]) -> None:
    """Leave NaN in the memory the next allocations of these sizes (in bytes) will get.

    PyTorch's CUDA caching allocator hands a freed block to the next request of the same size, so an
    output allocated with torch.empty and never written then reads as NaN and fails, instead of
    silently holding the baseline's answer from the previous call. On the CPU this is best effort: malloc
    usually hands back a freed chunk of the same size below its mmap threshold (not always: it depends on
    what else the heap holds); above it, freed memory goes back to the OS and comes back as zeros.
    """
    blocks = [torch.full(((n + 3) // 4,), float("nan"), dtype=torch.float32, device=device) for n in sizes if n > 0]
    del blocks
