"""Certificates for accepted kernels, and re-checking them on another day or another machine.

A certificate pins what was verified (SHA-256 of the problem and candidate sources), what the reference
computed (the digest of its output on a fixed probe input), where (hardware, software versions) and what
was measured (the reference's time, the candidate's, the speedup and its 95% interval). ``check``
verifies the candidate again here, from scratch, and says

    HOLDS     the same device, size and dtype, accepted again, and the certified speedup within the new
              measurement's 95% interval widened to twice its width and by 5% (the certified figure is
              a claim: the file can be edited, so its own interval and rounds are not trusted)
    DRIFTED   anything else (exit 1); every difference is listed, including the ones that alone do not
              make it drift (software versions, the reference's output bits)
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
        "baseline": {"what": "the problem's Model in PyTorch eager", "median_ms": verdict["baseline_ms"]},
        "candidate_timing": {"median_ms": verdict["candidate_ms"]},
        "speedup": verdict["speedup"], "speedup_ci": verdict.get("speedup_ci"), "min_speedup": verdict["min_speedup"],
        "suspect": verdict["suspect"], "timing": {k: (verdict.get("timing") or {}).get(k) for k in
                                                  ("clock", "calls_per_batch", "rounds", "noise")},
        "sandbox": verdict.get("sandbox"), "provenance": verdict.get("provenance"),
    }


def write(verdict: dict, path: Path) -> dict:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cert = build(verdict, path.parent)
    path.write_text(json.dumps(cert, indent=1, default=str) + "\n")
    return cert


def drift(cert: dict, verdict: dict) -> tuple[list[str], list[str]]:
    """(blocking, noted): differences that make a certificate DRIFTED, and the ones only reported."""
    blocking, noted = [], []
    old_hw, new_hw = cert.get("hardware") or {}, verdict.get("hardware") or {}
    for key in ("name", "capability", "gpu_count", "cpu"):
        if old_hw.get(key) != new_hw.get(key):
            blocking.append(f"hardware {key}: {old_hw.get(key)} -> {new_hw.get(key)}")
    for key in ("driver", "cuda"):
        if old_hw.get(key) != new_hw.get(key):
            noted.append(f"hardware {key}: {old_hw.get(key)} -> {new_hw.get(key)}")
    for key in ("device", "size", "dtype"):
        if cert.get(key) != verdict.get(key):
            blocking.append(f"{key}: certified {cert.get(key)}, run as {verdict.get(key)}")
    old_v, new_v = cert.get("versions") or {}, verdict.get("versions") or {}
    for key in sorted(set(old_v) | set(new_v)):
        if old_v.get(key) != new_v.get(key):
            noted.append(f"{key} version: {old_v.get(key)} -> {new_v.get(key)}")
    anchor = verdict.get("anchor") or {}
    if anchor.get("digests") != (cert.get("reference_anchor") or {}).get("digests"):
        noted.append("reference output on the probe input changed (its digest differs): the library or hardware "
                     "computes the reference differently now, so tolerances, not bits, carry the comparison")
    old_s, new_s = cert.get("speedup"), verdict.get("speedup")
    if not isinstance(old_s, (int, float)) or old_s <= 0:
        blocking.append(f"the certificate claims no speedup one can check ({old_s!r})")
    elif new_s:
        lo, hi = claim_range(new_s, verdict.get("speedup_ci") or [new_s, new_s])
        if not lo <= old_s <= hi:
            blocking.append(f"speedup certified {old_s:.3g}x, measured now {new_s:.3g}x (95% "
                            f"{verdict['speedup_ci'][0]:.3g}-{verdict['speedup_ci'][1]:.3g}): outside {lo:.3g}-{hi:.3g}, "
                            "the range a claim measured with the same noise can lie in")
    return blocking, noted


def claim_range(speedup: float, ci: list[float]) -> tuple[float, float]:
    """Where a certified speedup may lie for this measurement to confirm it: the 95% interval widened to twice
    its width (the certified figure had noise of its own, of about the same size) and by 5% more."""
    down, up = speedup / ci[0], ci[1] / speedup
    return speedup / (down * down * 1.05), speedup * up * up * 1.05


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
        return {"certificate": str(path), "ok": False, "sources_changed": changed, "drift": [], "noted": [],
                "still_accepted": None,
                "reason": "not re-verified: the sources changed", "certified_speedup": cert.get("speedup"),
                "speedup_now": None, "verdict": None}
    from harness.device import pick_device

    try:
        here = pick_device("cpu" if device == "auto" and cert.get("device") == "cpu" else device).type
    except (RuntimeError, ValueError) as exc:
        raise CertificateError(str(exc)) from exc
    size = cert.get("size") if here == cert.get("device") else None  # else this device's default size
    # at least the default rounds, whatever the file says (it can be edited)
    certified_rounds = (cert.get("timing") or {}).get("rounds")
    rounds = max(16, certified_rounds if type(certified_rounds) is int else 0)
    min_speedup = cert.get("min_speedup")
    verdict = verify(problem, candidate, device=here, size=size, rounds=rounds, timeout=timeout,
                     min_speedup=min_speedup if isinstance(min_speedup, (int, float)) else 1.0)
    blocking, noted = drift(cert, verdict)
    return {"certificate": str(path), "ok": verdict["accepted"] and not blocking, "sources_changed": changed,
            "drift": blocking, "noted": noted, "still_accepted": verdict["accepted"], "reason": verdict["reason"],
            "certified_speedup": cert.get("speedup"), "speedup_now": verdict["speedup"], "verdict": verdict}


def report_text(report: dict) -> str:
    lines = [f"certificate {report['certificate']}: {'HOLDS' if report['ok'] else 'DRIFTED'}"]
    lines += [f"  {c}" for c in report["sources_changed"]]
    if report["still_accepted"] is None:
        lines.append(f"  {report['reason']}")
    else:
        lines.append(f"  re-verified here: {'accepted' if report['still_accepted'] else 'rejected'}: {report['reason']}")
    if report["speedup_now"] is not None:
        lines.append(f"  speedup certified {report['certified_speedup']:.3g}x, now {report['speedup_now']:.3g}x")
    lines += [f"  drift: {d}" for d in report["drift"]] or ["  drift: none"]
    lines += [f"  noted (not drift by itself): {d}" for d in report.get("noted", [])]
    return "\n".join(lines)
