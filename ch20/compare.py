"""harness.verify.compare's rule, fast enough for full-size outputs judged many times per candidate.

Same rule (an element passes when |out - ref| <= atol + rtol * |ref|), same tolerances by dtype, same
failure messages; two differences in how it gets there: a bitwise-equal output passes at once, and the
arithmetic runs in float32 in place (float64 only for float64 outputs), whose rounding (6e-8 relative)
is far below any tolerance here; NaN and Inf are looked for only when some element already failed (a
NaN fails every comparison). A 4096 x 8192 float32 output is judged several times faster that way.
"""
from __future__ import annotations

import math

import torch

from harness.verify import Comparison, tolerance_for


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
        if torch.equal(o, r):                  # bitwise equal (NaN never is): nothing to compute
            worst = Comparison(True, "", worst.max_abs_err, worst.rel_l2_err, rtol, atol)
            continue
        work = torch.float32 if r.dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.float64
        r_w, o_w = r.detach().to("cpu", work), o.detach().to("cpu", work)
        diff = torch.sub(o_w, r_w).abs_()      # a new tensor: o_w may be the caller's own when dtypes match
        good = diff <= r_w.abs().mul_(rtol).add_(atol)   # False for NaN, so NaN and Inf land below
        max_abs = float(diff.max()) if diff.numel() else 0.0
        if not bool(good.all()) or not math.isfinite(max_abs):  # (Inf vs Inf passes the rule; it is no answer)
            finite = torch.isfinite(o_w)
            if not bool(torch.isfinite(r_w).all()):
                return Comparison(False, f"{where}the baseline itself produced NaN/Inf", rtol=rtol, atol=atol)
            if not bool(finite.all()):
                return Comparison(False, f"{where}{int((~finite).sum())} NaN/Inf elements (never written, or overflow)",
                                  rtol=rtol, atol=atol)
            bad = ~good
            idx = int(bad.flatten().nonzero()[0])
            return Comparison(
                False,
                f"{where}{int(bad.sum())} of {bad.numel()} elements differ beyond rtol={rtol:g}, atol={atol:g}; "
                f"first at flat index {idx}: {float(o_w.flatten()[idx]):.6g} vs {float(r_w.flatten()[idx]):.6g}",
                max_abs, float(diff.norm() / r_w.norm().clamp_min(1e-30)), rtol, atol,
            )
        rel_l2 = float(diff.norm() / r_w.norm().clamp_min(1e-30)) if diff.numel() else 0.0
        if max_abs >= worst.max_abs_err:
            worst = Comparison(True, "", max_abs, max(rel_l2, worst.rel_l2_err), rtol, atol)
    return worst
