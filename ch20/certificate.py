"""Certificates for accepted kernels, and re-checking them on another day or another machine.

A certificate pins what was verified (SHA-256 of the problem and candidate sources), what the reference
computed (an exact SHA-256 of its output on a fixed probe input), where (hardware, software versions)
and what was measured (the reference's time, the candidate's, the speedup). ``check`` verifies the
candidate again here, from scratch, and reports every way this machine drifted from the certificate's.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from harness.device import REPO_ROOT, git_sha


class CertificateError(Exception):
    pass


def _portable(path: str, cert_dir: Path) -> str:
    """Relative to the certificate when beside it, else to the repository, else absolute."""
    p = Path(path).resolve()
    for base in (cert_dir.resolve(), REPO_ROOT):
        try:
            return str(p.relative_to(base))
        except ValueError:
            continue
    return str(p)


def _resolve(path: str, cert_dir: Path) -> Path:
    for p in (cert_dir / path, REPO_ROOT / path, Path(path)):
        if p.is_file():
            return p.resolve()
    raise CertificateError(f"the certificate's file {path} is not found beside it, in the repository or as given")


def build(verdict: dict, cert_dir: Path) -> dict:
    if not verdict["accepted"]:
        raise CertificateError("only an accepted kernel gets a certificate")
    return {
        "kind": "ch20 kernel certificate", "version": 1,
        "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "problem": {"path": _portable(verdict["problem"], cert_dir), "sha256": verdict["problem_sha256"]},
        "candidate": {"path": _portable(verdict["candidate"], cert_dir), "sha256": verdict["candidate_sha256"]},
        "reference_anchor": verdict["anchor"],
        "device": verdict["device"], "size": verdict["size"], "dtype": verdict["dtype"],
        "hardware": verdict["hardware"], "versions": verdict["versions"],
        "trials": [{k: t[k] for k in ("distribution", "ok", "max_abs_err")} for t in verdict["trials"]],
        "tolerance": verdict["tolerance"], "max_abs_err": verdict["max_abs_err"],
        "baseline": {"what": "the problem's Model in PyTorch eager", "median_ms": verdict["baseline_ms"],
                     "wall_ms": verdict["baseline_wall_ms"]},
        "candidate_timing": {"median_ms": verdict["candidate_ms"], "wall_ms": verdict["candidate_wall_ms"]},
        "speedup": verdict["speedup"], "min_speedup": verdict["min_speedup"], "suspect": verdict["suspect"],
        "timing_config": (verdict.get("timing") or {}).get("config"),
    }


def write(verdict: dict, path: Path) -> dict:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cert = build(verdict, path.parent)
    path.write_text(json.dumps(cert, indent=1, default=str) + "\n")
    return cert


def drift(cert: dict, verdict: dict) -> list[str]:
    """Every difference between the certificate's machine and results and this run's."""
    out = []
    old_hw, new_hw = cert.get("hardware") or {}, verdict.get("hardware") or {}
    for key in ("name", "capability", "driver", "cuda", "gpu_count", "cpu"):
        if old_hw.get(key) != new_hw.get(key):
            out.append(f"hardware {key}: {old_hw.get(key)} -> {new_hw.get(key)}")
    old_v, new_v = cert.get("versions") or {}, verdict.get("versions") or {}
    for key in sorted(set(old_v) | set(new_v)):
        if old_v.get(key) != new_v.get(key):
            out.append(f"{key} version: {old_v.get(key)} -> {new_v.get(key)}")
    anchor = verdict.get("anchor") or {}
    if anchor.get("sha256") != cert["reference_anchor"].get("sha256"):
        out.append("reference output on the probe input changed (its SHA-256 differs): the library or hardware "
                   "computes the reference differently now, so tolerances, not bits, carry the comparison")
    if cert.get("size") != verdict.get("size") or cert.get("device") != verdict.get("device"):
        out.append(f"run as {verdict.get('device')}/{verdict.get('size')}, certified as {cert.get('device')}/{cert.get('size')}")
    if verdict.get("speedup") and cert.get("speedup"):
        ratio = verdict["speedup"] / cert["speedup"]
        if abs(ratio - 1) > 0.1:
            out.append(f"speedup {cert['speedup']:.3g}x -> {verdict['speedup']:.3g}x")
    return out


def check(path: Path, *, device: str = "auto", timeout: float = 120.0) -> dict:
    from ch20.verify import verify

    path = Path(path)
    try:
        cert = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot read certificate {path}: {exc}") from exc
    if cert.get("kind") != "ch20 kernel certificate":
        raise CertificateError(f"{path} is not a ch20 kernel certificate")
    problem = _resolve(cert["problem"]["path"], path.parent)
    candidate = _resolve(cert["candidate"]["path"], path.parent)
    from ch20.problem import sha256_file

    changed = [f"{what} source changed since certification ({p})"
               for what, p, want in (("problem", problem, cert["problem"]["sha256"]),
                                     ("candidate", candidate, cert["candidate"]["sha256"]))
               if sha256_file(p) != want]
    if changed:  # a different file is a different question: its certificate no longer applies
        return {"certificate": str(path), "ok": False, "sources_changed": changed, "drift": [], "still_accepted": None,
                "reason": "not re-verified: the sources changed", "certified_speedup": cert.get("speedup"),
                "speedup_now": None, "verdict": None}
    from harness.device import pick_device

    try:
        here = pick_device("cpu" if device == "auto" and cert.get("device") == "cpu" else device).type
    except (RuntimeError, ValueError) as exc:
        raise CertificateError(str(exc)) from exc
    size = cert.get("size") if here == cert.get("device") else None  # else this device's default size
    verdict = verify(problem, candidate, device=here, size=size, trials=max(len(cert["trials"]), 1),
                     timeout=timeout, min_speedup=cert.get("min_speedup", 1.0))
    return {"certificate": str(path), "ok": not changed and verdict["accepted"], "sources_changed": changed,
            "drift": drift(cert, verdict), "still_accepted": verdict["accepted"], "reason": verdict["reason"],
            "certified_speedup": cert.get("speedup"), "speedup_now": verdict["speedup"], "verdict": verdict}


def report_text(report: dict) -> str:
    lines = [f"certificate {report['certificate']}: {'HOLDS' if report['ok'] else 'DOES NOT HOLD'}"]
    lines += [f"  {c}" for c in report["sources_changed"]]
    if report["still_accepted"] is None:
        lines.append(f"  {report['reason']}")
    else:
        lines.append(f"  re-verified here: {'accepted' if report['still_accepted'] else 'rejected'}: {report['reason']}")
    if report["speedup_now"] is not None:
        lines.append(f"  speedup certified {report['certified_speedup']:.3g}x, now {report['speedup_now']:.3g}x")
    lines += [f"  drift: {d}" for d in report["drift"]] or ["  drift: none"]
    return "\n".join(lines)
