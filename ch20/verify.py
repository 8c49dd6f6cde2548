"""The verifier: is a candidate kernel correct, and is it faster than the PyTorch reference?

    python -m ch20.verify --problem P.py --candidate C.py [--device auto|cpu|cuda] [--size S] [--trials N]
                          [--rounds R] [--threads T] [--timeout S] [--min-speedup X] [--json OUT]
                          [--save-certificate CERT.json]
    python -m ch20.verify --certificate CERT.json

This process never imports the candidate and never believes a number it reports: a reference child and
a sandboxed candidate child run the same parent-dictated batches, timed here, interleaved round by round;
outputs are committed by digest before the timer stops and checked afterwards in the reference child
(ch20/judge.py). Exit 0 when accepted (correct and speedup >= --min-speedup), 1 when rejected, 2 on a
usage error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ch20 import sandbox
from ch20._process import ChildTimeout, ForgedMessage, MemoryCapExceeded
from ch20.judge import Judge, Rejected, start_candidate
from ch20.problem import Problem, ProblemError, load_problem, sha256_file
from ch20.screen import screen
from ch20.session import Reference, UsageError, new_secrets, run_reference
from harness.device import pick_device

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
SUSPECT_SPEEDUP = 10.0          # above this a speedup is flagged for a human to look at
DEFAULT_ROUNDS = 16
__all__ = ["Reference", "UsageError", "run_reference", "verify", "main"]


def _new_verdict(problem: Problem, candidate: Path, device: str, size: str, min_speedup: float) -> dict:
    return {"problem": str(problem.path), "candidate": str(candidate), "problem_sha256": problem.sha256,
            "candidate_sha256": sha256_file(candidate), "device": device, "size": size,
            "dtype": problem.dtype_name(size) or "as drawn",   # the drawn inputs' dtype once the reference runs
            "compiled": False, "correct": False, "accepted": False, "reason": "", "stage": "static",
            "max_abs_err": None, "rel_l2_err": None, "tolerance": None, "trials": [], "baseline_ms": None,
            "candidate_ms": None, "speedup": None, "speedup_ci": None, "min_speedup": min_speedup, "suspect": [],
            "warnings": [], "tampered": False, "hardware": {}, "versions": {}, "anchor": None, "feedback": "",
            "sandbox": {}, "provenance": {}, "timing": {}, "elapsed_s": None}


# CPU seconds a frozen candidate may still show: the last tick of a process stopped mid-tick is charged late
FROZEN_CPU_SLACK_S, FROZEN_CPU_SLACK_PER_WINDOW_S = 0.02, 0.002


def _accept_or_reject(verdict: dict, judge: Judge, stats: dict) -> None:
    ref = judge.ref
    verdict.update(correct=True, stage="done", trials=judge.checked, baseline_ms=stats["baseline_ms"],
                   candidate_ms=stats["candidate_ms"], speedup=stats["speedup"], speedup_ci=stats["speedup_ci"],
                   max_abs_err=max((t["max_abs_err"] for t in judge.checked), default=0.0),
                   rel_l2_err=max((t["rel_l2_err"] for t in judge.checked), default=0.0),
                   timing={"clock": "the verifier's perf_counter around each batch request and reply; per round, each "
                                    "side's faster batch",
                           "calls_per_batch": min(b["n"] for b in judge.batch_s), "rounds": stats["rounds"],
                           "noise": stats["noise"],
                           "ratios": stats["ratios"], "reference_batch_s": judge.times["reference"],
                           "candidate_batch_s": judge.times["candidate"], "batches_s": judge.batch_s,
                           "calibration": ref.calibration})
    if ref.device == "cpu" and judge.cpu["wall"] > 0:
        per_wall = judge.cpu["seconds"] / judge.cpu["wall"]
        verdict["provenance"]["candidate_cpu_per_wall"] = round(per_wall, 3)
        if per_wall > ref.threads + 0.5:
            raise Rejected(f"it used {per_wall:.2f} CPU seconds per second of its batches, more than the "
                           f"{ref.threads} thread(s) every side gets: a timing that is not comparable", tampered=True,
                           correct=True)
    escaped, windows = judge.cand.cpu_while_frozen, judge.cand.frozen_windows
    verdict["provenance"]["candidate_cpu_while_frozen_s"] = round(escaped, 4)
    if escaped > FROZEN_CPU_SLACK_S + FROZEN_CPU_SLACK_PER_WINDOW_S * windows:
        raise Rejected(f"it used {escaped:.3f} s of CPU while frozen ({windows} windows in which only the reference "
                       "may run): part of it escaped the freeze (processes that fork and exit faster than it "
                       "follows, say) and ran beside the reference's batches", tampered=True, correct=True)
    if judge.quiet_failures:
        raise Rejected(f"the device was still busy with foreign work when {judge.quiet_failures} reference batches "
                       "began: the candidate leaves work running after its batch", tampered=True, correct=True)
    if stats["speedup"] > SUSPECT_SPEEDUP:
        verdict["suspect"].append(f"speedup {stats['speedup']:.1f}x is over {SUSPECT_SPEEDUP:g}x: check the work is all done")
    if stats["speedup"] < verdict["min_speedup"]:
        verdict["reason"] = f"correct, but {stats['speedup']:.3g}x is below --min-speedup {verdict['min_speedup']:g}"
        return
    verdict.update(accepted=True, reason=f"correct on {len(judge.checked)} checked calls and {stats['speedup']:.3g}x "
                   f"the reference (95% interval {stats['speedup_ci'][0]:.3g}-{stats['speedup_ci'][1]:.3g}x)")


def judge_candidate(reference: Reference, candidate: Path, verdict: dict, deadline: float, rounds: int,
                    child=None) -> None:
    """Run the candidate against the live reference and fill in the verdict; never raises for the candidate's
    sake (only a ProblemError about the reference itself)."""
    before = sandbox.import_path_state()
    judge = None
    with reference.lock:
        try:
            judge = Judge(reference, candidate.read_text(errors="replace"), candidate.name, verdict, deadline, rounds,
                          child)
            verdict["sandbox"] = dict(sandbox.probe(reference.device)["layers"])
            ready = judge.start()
            verdict.update(compiled=True, stage="run")
            verdict["provenance"].update(candidate_uid=_int_or_none(ready.get("uid")),
                                         candidate_pid_inside=_int_or_none(ready.get("pid")),
                                         candidate_digest=_plain(ready.get("digest")))
            if ready.get("digest") != reference.digest_method:
                raise ForgedMessage(f"the candidate child digests with {ready.get('digest')!r}, the reference with "
                                    f"{reference.digest_method!r}")
            _accept_or_reject(verdict, judge, judge.run())
        except Rejected as exc:
            detail = exc.stage.split("\n", 1)
            if exc.correct is not None:
                verdict["correct"] = exc.correct
            elif verdict["stage"] == "run":
                verdict["correct"] = False
            if "does not compile" in str(exc):
                verdict["compiled"] = False
            verdict.update(reason=str(exc), tampered=exc.tampered, stage=detail[0] or verdict["stage"])
            if len(detail) > 1 and detail[1].strip():
                verdict["error"] = detail[1].strip()[-1500:]
            verdict["trials"] = judge.checked if judge else []
        except ChildTimeout:
            verdict.update(correct=False, reason=f"timed out during {verdict['stage']} (no answer within --timeout)")
        except MemoryCapExceeded as exc:
            verdict.update(correct=False, reason=f"stopped during {verdict['stage']}: {exc}")
        except ForgedMessage as exc:
            verdict.update(correct=False, reason=str(exc), tampered=True)
        except ProblemError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever went wrong while judging is a rejection, with a verdict
            verdict.update(correct=False, reason=f"the verifier could not judge it ({type(exc).__name__}: {exc})")
        finally:
            if judge is not None:
                judge.close()
    changed = sandbox.import_path_changes(before, sandbox.import_path_state())
    if changed:
        verdict.update(accepted=False, tampered=True, reason=f"it wrote into Python's import path ({changed[0]}): "
                       "a file a later verification would import")


def _int_or_none(x):
    return x if type(x) is int else None


def _plain(x, depth: int = 0):
    """x as JSON can always write it: str keys, lists for tuples, the repr (cut to 200 characters) of anything
    else. A verdict must be writable whatever a child put into a reply (a dict keyed by tuples is a Python
    literal, and json.dumps refuses it even with default=str)."""
    if x is None or type(x) in (bool, int, float, str):
        return x
    if depth < 32 and type(x) is dict:
        return {k if type(k) is str else repr(k)[:200]: _plain(v, depth + 1) for k, v in x.items()}
    if depth < 32 and type(x) in (list, tuple):
        return [_plain(v, depth + 1) for v in x]
    return repr(x)[:200]


def feedback(verdict: dict) -> str:
    """What the next prompt should hear: the error, where the output differed and by how much, or the timing."""
    lines = []
    if not verdict["compiled"]:
        reason = verdict["reason"]
        lines.append(f"Your kernel {reason}." if reason.startswith("does not compile") else f"Rejected: {reason}.")
    elif not verdict["correct"] and verdict["stage"] != "compare":
        lines.append(f"Your kernel failed: {verdict['reason']}.")
    elif not verdict["correct"]:
        lines.append(f"Your kernel is wrong: {verdict['reason']}.")
        tol = verdict.get("tolerance") or {}
        if tol:
            lines.append(f"Tolerance: rtol={tol['rtol']:g}, atol={tol['atol']:g} ({tol['dtype']} outputs).")
        if "NaN/Inf" in verdict["reason"] and "large" in verdict["reason"]:
            lines.append("It overflows on large-magnitude inputs (x*100): subtract the row maximum before exp, "
                         "and accumulate in float32.")
    else:
        dists = sorted({t["distribution"] for t in verdict["trials"]})
        lines.append(f"Correct on {len(verdict['trials'])} checked calls ({', '.join(dists)} inputs), "
                     f"max abs error {verdict['max_abs_err']:.3g}.")
        if verdict["speedup"] is not None:
            lines.append(f"Timing: reference {verdict['baseline_ms']:.4g} ms, yours {verdict['candidate_ms']:.4g} ms per "
                         f"call: {verdict['speedup']:.3g}x. " + ("Accepted." if verdict["accepted"] else verdict["reason"]))
        else:
            lines.append(verdict["reason"])
    if verdict.get("error"):
        lines.append("Error output (last lines):\n" + "\n".join(verdict["error"].splitlines()[-12:]))
    lines += [f"Suspect: {s}" for s in verdict["suspect"]]
    lines += [f"Warning, line {w['line']}: {w['message']}" for w in verdict["warnings"]]
    return "\n".join(lines)


def verify(problem: str | Path | Problem | None, candidate: str | Path, *, device: str = "auto", size: str | None = None,
           trials: int = 5, timeout: float = 120.0, min_speedup: float = 1.0, reference: Reference | None = None,
           rounds: int = DEFAULT_ROUNDS, threads: int = 1) -> dict:
    """The whole verdict as a dict (see the module docstring). `reference` lets a loop reuse one live reference
    for many candidates; without it a fresh one is started and stopped."""
    started = time.monotonic()
    deadline = started + timeout
    load_start = os.getloadavg()
    if reference is not None:
        problem = reference.problem
    elif not isinstance(problem, Problem):
        problem = load_problem(problem)
    candidate = Path(candidate).resolve()
    if not candidate.is_file():
        raise UsageError(f"no candidate file {candidate}")
    if rounds < 2:
        raise UsageError("--rounds must be at least 2")
    if reference is not None:
        dev, size = reference.device, reference.size
    else:
        try:
            dev = pick_device(device).type
        except (RuntimeError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        size = size or ("full" if dev == "cuda" else "tiny")
    verdict = _new_verdict(problem, candidate, dev, size, min_speedup)
    syntax_error, verdict["warnings"] = screen(candidate.read_text(errors="replace"))
    own_reference = reference is None and not syntax_error
    if syntax_error:
        verdict.update(reason=f"does not compile: {syntax_error}")
    else:
        child = None
        if own_reference:   # the candidate child starts (imports torch, builds its model) while the reference calibrates
            secrets_ = new_secrets()
            dtype = problem.dtype_name(size)
            child = start_candidate(problem, dev, size, dtype, secrets_[0], secrets_[1], threads,
                                    candidate.read_text(errors="replace"), candidate.name, deadline)
            try:
                reference = run_reference(problem, device=dev, size=size, trials=trials, threads=threads,
                                          timeout=max(1.0, deadline - time.monotonic()), secrets_=secrets_)
            except BaseException:
                child.finish(grace_s=0)
                raise
            verdict["phases"] = {"reference_ready_s": round(time.monotonic() - started, 4)}
        try:
            verdict.update(tolerance=reference.tolerance(), hardware=reference.hardware, versions=reference.versions,
                           anchor=reference.anchor, dtype=reference.dtype_label)
            verdict["provenance"].update(threads=reference.threads, digest=reference.digest_method,
                                         calls_per_batch=reference.calls_per_batch, loadavg_start=list(load_start),
                                         distributions=list(reference.distributions),
                                         distributions_left_out=dict(reference.left_out))
            judge_candidate(reference, candidate, verdict, deadline, rounds, child)
        finally:
            if own_reference:
                reference.close()
    verdict["provenance"]["loadavg_end"] = list(os.getloadavg())
    verdict = _plain(verdict)
    verdict["feedback"] = feedback(verdict)
    verdict["elapsed_s"] = round(time.monotonic() - started, 3)
    if verdict.get("phases"):
        verdict["phases"]["other_s"] = round(verdict["elapsed_s"] - sum(verdict["phases"].values()), 4)
    return verdict


def summary(verdict: dict) -> str:
    ok = "ACCEPTED" if verdict["accepted"] else "REJECTED"
    lines = [f"{Path(verdict['candidate']).name} for {Path(verdict['problem']).name} "
             f"[{verdict['device']}, size {verdict['size']}, {verdict['dtype']}]: {ok}: {verdict['reason']}"]
    if verdict["trials"]:
        lines.append(f"  checked calls: {len(verdict['trials'])} ("
                     + ", ".join(sorted({t['distribution'] for t in verdict['trials']})) + ")"
                     + (f"; max abs err {verdict['max_abs_err']:.3g}" if verdict["max_abs_err"] is not None else ""))
    if verdict["speedup"] is not None:
        lines.append(f"  reference {verdict['baseline_ms']:.4g} ms, candidate {verdict['candidate_ms']:.4g} ms per call: "
                     f"{verdict['speedup']:.3g}x (95% {verdict['speedup_ci'][0]:.3g}-{verdict['speedup_ci'][1]:.3g}x)")
    left_out = verdict["provenance"].get("distributions_left_out")
    if left_out:
        lines.append("  input distributions left out: " + "; ".join(f"{d} ({why})" for d, why in left_out.items()))
    missing = [k for k, v in verdict.get("sandbox", {}).items() if not v.startswith("applied")]
    if missing:
        lines.append(f"  sandbox layers unavailable: {', '.join(missing)}")
    lines += [f"  suspect: {s}" for s in verdict["suspect"]]
    lines += [f"  warning line {w['line']} ({w['kind']}): {w['message']}" for w in verdict["warnings"]]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            print(f"ch20.verify: {message}", file=sys.stderr)
            sys.exit(EXIT_USAGE)

    p = Parser(prog="python -m ch20.verify", description=__doc__.splitlines()[0])
    p.add_argument("--problem", type=Path)
    p.add_argument("--candidate", type=Path)
    p.add_argument("--certificate", type=Path, help="re-check a certificate on this machine: HOLDS or DRIFTED")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--size", choices=["tiny", "small", "full"], help="default: full on a GPU, tiny on the CPU")
    p.add_argument("--trials", type=int, default=5, help="rounds whose checked outputs are compared whole")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="timed rounds (reference and candidate)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads each child may use")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole verification")
    p.add_argument("--min-speedup", type=float, default=1.0)
    p.add_argument("--json", type=Path, help="write the verdict (or the certificate check) here")
    p.add_argument("--save-certificate", type=Path, help="write a certificate here when accepted")
    return p


def main(argv: list[str] | None = None) -> int:
    from ch20 import certificate as cert

    args = _parser().parse_args(argv)
    try:
        if args.certificate:
            report = cert.check(args.certificate, device=args.device, timeout=args.timeout)
            print(cert.report_text(report))
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(report, indent=1, default=str))
            return EXIT_ACCEPTED if report["ok"] else EXIT_REJECTED
        if not (args.problem and args.candidate):
            raise UsageError("give --problem and --candidate, or --certificate")
        verdict = verify(args.problem, args.candidate, device=args.device, size=args.size, trials=args.trials,
                         timeout=args.timeout, min_speedup=args.min_speedup, rounds=args.rounds, threads=args.threads)
    except (UsageError, ProblemError, cert.CertificateError) as exc:
        print(f"ch20.verify: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    print(summary(verdict))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(verdict, indent=1, default=str))
    if args.save_certificate and verdict["accepted"]:
        cert.write(verdict, args.save_certificate)
        print(f"certificate: {args.save_certificate}")
    return EXIT_ACCEPTED if verdict["accepted"] else EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main())
