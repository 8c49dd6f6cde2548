"""Judging one exported call, in the reference child (a process the candidate never entered).

The candidate committed, before the parent's timer stopped, a structure, shapes, dtypes and a digest per
output chunk; afterwards it wrote the chunks the parent asked for into a memfd, which the parent sealed
(no process can change it any more) and passed here. This recomputes each chunk's digest from those
bytes, compares it with the commitment, and compares the values with this child's own output for the
same inputs, using harness.verify.compare (|out - ref| <= atol + rtol |ref|, NaN/Inf fail).
"""
from __future__ import annotations

import math

from harness import verify as hv

GROUP_CHUNKS = 64   # chunks moved to the device and compared at a time: bounded memory at any output size


def describe(structure) -> str:
    if structure == "tensor":
        return "a tensor"
    if isinstance(structure, list) and structure and structure[0] in ("tuple", "list"):
        return f"a {structure[0]} of {len(structure[1])}"
    if isinstance(structure, list) and structure and structure[0] == "dict":
        return f"a dict with keys {structure[1]}"
    return repr(structure)


def chunk_runs(chunks: list) -> list[tuple[int, int, int]]:
    """Runs of consecutive chunks of one tensor: (tensor, first chunk, count)."""
    runs: list[list[int]] = []
    for ti, ci in chunks:
        if runs and runs[-1][0] == ti and runs[-1][1] + runs[-1][2] == ci and runs[-1][2] < GROUP_CHUNKS:
            runs[-1][2] += 1
        else:
            runs.append([ti, ci, 1])
    return [tuple(r) for r in runs]


def check_exported(runner, drawn: tuple, structure, tensors, committed: dict, chunks: list, mm, pos: int) -> tuple[dict, int]:
    """(result, position after this call's bytes in mm)."""
    torch, dg = runner.torch, runner.digest
    result = {"ok": False, "reason": "", "max_abs_err": 0.0, "rel_l2_err": 0.0, "reference_finite": True}
    for t in tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            result.update(reference_finite=False, reason="the reference itself gives NaN/Inf on these inputs")
            return result, pos
    drawn, after = drawn   # the inputs as drawn, and as the reference leaves them (it may modify them in place)
    if committed["input_digests"] not in (drawn, after):
        changed = [i for i, (a, b) in enumerate(zip(committed["input_digests"], drawn, strict=False)) if a != b]
        also = " and from the reference's after its call" if after != drawn else ""
        result["reason"] = (f"its inputs after the call differ from the ones drawn{also} (input {changed}): "
                            "modified in place")
        return result, pos
    if committed["structure"] != structure:
        result["reason"] = f"returned {describe(committed['structure'])}, the reference {describe(structure)}"
        return result, pos
    want = runner.describe(tensors)
    for i, t in enumerate(tensors):
        where = f"output {i}: " if len(tensors) > 1 else ""
        if committed["shapes"][i] != want["shapes"][i]:
            result["reason"] = f"{where}shape {tuple(committed['shapes'][i])} != reference {tuple(want['shapes'][i])}"
            return result, pos
        if committed["dtypes"][i] != want["dtypes"][i]:
            result["reason"] = f"{where}dtype {committed['dtypes'][i]} != reference {want['dtypes'][i]}"
            return result, pos
    refs = [dg.tensor_bytes(t) for t in tensors]
    expected = sum(min(dg.CHUNK_BYTES, refs[ti].numel() - ci * dg.CHUNK_BYTES) for ti, ci in chunks)
    if mm is None and expected or mm is not None and pos + expected > len(mm):
        result["reason"] = "sent fewer bytes than were asked for"
        return result, pos
    tol = runner.problem_tolerance
    sq_err, sq_ref = 0.0, 0.0
    for ti, c0, count in chunk_runs(chunks):
        ref = refs[ti][c0 * dg.CHUNK_BYTES:(c0 + count) * dg.CHUNK_BYTES]
        n = ref.numel()
        got = torch.frombuffer(mm, dtype=torch.uint8, count=n, offset=pos).to(ref.device, copy=True) if n else ref[:0].clone()
        pos += n
        sent = dg.digests(got, runner.key, runner.method, first_chunk=c0)
        if sent != committed["digests"][ti][c0:c0 + count]:
            result["reason"] = ("the bytes it sent differ from the digest it committed to when its batch ended: "
                                "an output computed or changed after the timer stopped")
            return result, pos
        dtype = tensors[ti].dtype
        cmp = hv.compare([got.view(dtype)], [ref.view(dtype)], tol)
        if not cmp.ok:
            first = (c0 * dg.CHUNK_BYTES) // tensors[ti].element_size()
            where = f"output {ti}: " if len(tensors) > 1 else ""
            # the worst error too: 6 printed digits hide a float64 error of 1e-6
            worst = f"; max abs error {cmp.max_abs_err:.3g}" if dtype.is_floating_point and cmp.max_abs_err else ""
            result["reason"] = f"{where}{cmp.reason} (flat offset {first} onwards{worst})"
            return result, pos
        result["max_abs_err"] = max(result["max_abs_err"], cmp.max_abs_err)
        ref_sq = float(ref.view(dtype).double().pow(2).sum()) if dtype.is_floating_point else 0.0
        sq_ref += ref_sq
        sq_err += (cmp.rel_l2_err ** 2) * max(ref_sq, 1e-60)
        del got
    result.update(ok=True, rel_l2_err=math.sqrt(sq_err / sq_ref) if sq_ref > 0 else 0.0)
    return result, pos
