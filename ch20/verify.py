"""The verifier: is a candidate kernel correct, and is it faster than the PyTorch reference?

    python -m ch20.verify --problem P.py --candidate C.py [--device auto|cpu|cuda] [--trials N]
                          [--timeout S] [--min-speedup X] [--json OUT] [--save-certificate CERT.json]
    python -m ch20.verify --certificate CERT.json

This process never imports the candidate. It draws every trial's inputs itself from seeds the
candidate cannot predict, runs the reference in one child process and the candidate in another
(ch20/_child.py), loads the outputs those children saved and compares them here. Exit 0 when accepted
(correct and speedup >= --min-speedup), 1 when rejected, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ch20._process import Child, ChildTimeout, ForgedMessage, load_result
from ch20.problem import Problem, ProblemError, load_problem, sha256_file, tensor_sha256
from ch20.screen import screen
from harness import verify as hv
from harness.device import pick_device
from harness.timing import Stats, TimingConfig
from harness.verify import compare

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
SUSPECT_SPEEDUP = 10.0       # above this a speedup is flagged for a human to look at
PROBE_SEED = 20_240_520      # the fixed input whose reference output anchors a certificate
TIMING_SETS = {"cuda": 3, "cpu": 2}   # input sets the timed calls rotate through


class UsageError(Exception):
    pass


def default_timing(device_type: str) -> TimingConfig:
    if device_type == "cuda":  # the harness's method, cold L2, capped so a search can afford many candidates
        return TimingConfig(cold_l2=True, max_time_s=1.0)
    return TimingConfig(warmup_s=0.02, min_warmup_calls=2, min_samples=5, min_time_s=0.05, max_time_s=0.3)


def timing_stats(raw: dict) -> dict:
    """Median and spread from the child's raw samples, computed here rather than trusted from there."""
    return Stats.from_samples(raw["device_s"], raw["wall_s"], raw["reps"], raw["converged"]).to_dict()


@dataclass
class Reference:
    """The trusted side of a verification: inputs drawn here and the reference's outputs and timing."""
    problem: Problem
    device: str
    size: str
    dtype: str
    model_seed: int
    distributions: list[str]
    trial_inputs: list[list]
    input_hashes: list[list[str]]
    trial_outputs: list[dict]
    timing_inputs: list[list]
    timing_outputs: list[dict]
    anchor: dict
    stats: dict
    raw_timing: dict = field(repr=False)
    hardware: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    peaks: dict = field(default_factory=dict)
    work: tuple = (None, None)
    inputs_file: Path | None = None   # every trial's and timing set's inputs, copied for each candidate

    def tolerance(self) -> dict:
        first = self.trial_outputs[0]["tensors"][0]
        rtol, atol = self.problem.tolerance or hv.tolerance_for(first.dtype)
        return {"rtol": rtol, "atol": atol, "dtype": str(first.dtype).replace("torch.", ""),
                "source": "the problem's TOLERANCE" if self.problem.tolerance else "harness.verify, by output dtype"}


def _child_config(role, problem, device, size, dtype, model_seed, timing, workdir, memory_gb, **extra) -> dict:
    return {"role": role, "problem": str(problem.path), "device": device, "size": size, "dtype": dtype,
            "model_seed": model_seed, "timing": asdict(timing), "workdir": str(workdir),
            "memory_bytes": int(memory_gb * 2**30) if memory_gb else None, **extra}


def run_reference(problem: Problem, *, device: str, size: str, trials: int, timing: TimingConfig | None = None,
                  deadline: float | None = None, memory_gb: float = 16.0) -> Reference:
    """Draw inputs from secret seeds, and run and time the problem's Model in a child of its own."""
    if trials < 1:
        raise UsageError("--trials must be at least 1")
    timing = timing or default_timing(device)
    deadline = deadline or time.monotonic() + 600
    dtype = str(problem.dtype(size)).replace("torch.", "")
    dists = [problem.distributions[i % len(problem.distributions)] for i in range(trials)]
    trial_inputs = [problem.make_inputs(size, secrets.randbits(31), d) for d in dists]
    timing_inputs = [problem.make_inputs(size, secrets.randbits(31), "normal") for _ in range(TIMING_SETS[device])]
    probe = problem.make_inputs(size, PROBE_SEED, "normal")
    model_seed = secrets.randbits(31)
    workdir = Path(tempfile.mkdtemp(prefix="ch20-reference-"))
    child = None
    ok = False
    try:
        torch.save({"trials": trial_inputs, "timing": timing_inputs, "probe": probe}, workdir / "inputs.pt")
        child = Child(_child_config("reference", problem, device, size, dtype, model_seed, timing, workdir, memory_gb,
                                    peaks=True), workdir, deadline)
        msgs = {}
        while True:
            msg = child.recv()
            if msg is None:
                raise ProblemError(f"the reference child {child.exit_description()}: {child.log_tail()[-800:]}")
            if msg["event"] in ("compile_error", "runtime_error"):
                raise ProblemError(f"the reference itself fails ({msg['stage']}): {msg['summary']}\n{msg['error']}")
            msgs[msg["event"]] = msg
            if msg["event"] == "done":
                break
        outputs = load_result(workdir / "outputs.pt")
        timed = load_result(workdir / "timed.pt")
        ok = True
    except ChildTimeout as exc:
        raise ProblemError("the reference did not finish within --timeout: raise it") from exc
    except ForgedMessage as exc:
        raise ProblemError(f"the reference child's results are unreadable: {exc}") from exc
    finally:
        if child is not None:
            child.finish()
        for name in ("outputs.pt", "timed.pt", "child.log"):  # no candidate may find the trusted answers on disk
            (workdir / name).unlink(missing_ok=True)
        if not ok:
            shutil.rmtree(workdir, ignore_errors=True)
    for out, dist in zip(outputs["trials"] + outputs["timing"], dists + ["normal"] * len(timing_inputs), strict=True):
        for t in out["tensors"]:
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ProblemError(f"{problem.name}: the reference gives NaN/Inf on {dist!r} inputs; "
                                   "leave that distribution out of INPUT_DISTRIBUTIONS")
    probe_out = outputs["probe"][0]
    anchor = {"seed": PROBE_SEED, "distribution": "normal",
              "sha256": [tensor_sha256(t) for t in probe_out["tensors"]],
              "shapes": [list(t.shape) for t in probe_out["tensors"]],
              "dtypes": [str(t.dtype).replace("torch.", "") for t in probe_out["tensors"]]}
    raw = msgs["timing"]["raw"]
    reference = Reference(problem=problem, device=device, size=size, dtype=dtype, model_seed=model_seed,
                     distributions=dists, trial_inputs=trial_inputs,
                     input_hashes=[[tensor_sha256(x) for x in xs] for xs in trial_inputs],
                     trial_outputs=outputs["trials"], timing_inputs=timing_inputs, timing_outputs=timed["timed"],
                     anchor=anchor, stats=timing_stats(raw), raw_timing=raw,
                     hardware=msgs["ready"].get("hardware", {}), versions=msgs["ready"].get("versions", {}),
                     peaks=msgs["timing"].get("peaks") or {}, work=problem.work(timing_inputs[0]),
                     inputs_file=workdir / "inputs.pt")
    weakref.finalize(reference, shutil.rmtree, workdir, True)  # the inputs file lives as long as the reference
    return reference


def _describe(structure) -> str:
    if structure == "tensor":
        return "a tensor"
    if isinstance(structure, list) and structure and structure[0] in ("tuple", "list"):
        return f"a {structure[0]} of {len(structure[1])}"
    if isinstance(structure, list) and structure and structure[0] == "dict":
        return f"a dict with keys {structure[1]}"
    return repr(structure)


def _compare_call(rec_struct, rec_tensors, ref_out, tolerance) -> hv.Comparison:
    if rec_struct != ref_out["structure"]:
        return hv.Comparison(False, f"returned {_describe(rec_struct)}, the reference {_describe(ref_out['structure'])}")
    return compare(rec_tensors, ref_out["tensors"], tolerance)


def judge_outputs(reference: Reference, trials_out: list[dict]) -> list[dict]:
    """Per trial: the candidate's output before and after the reference ran, its inputs, and the
    reference computed beside it, all checked here against the trusted reference."""
    tol = reference.problem.tolerance
    results = []
    for i, rec in enumerate(trials_out):
        ref_out = reference.trial_outputs[i]
        row = {"trial": i, "distribution": reference.distributions[i], "ok": True, "max_abs_err": 0.0,
               "rel_l2_err": 0.0, "reason": ""}
        for key, when in (("before", "run before the reference"), ("after", "run again after the reference")):
            if rec[key + "_inputs"] != reference.input_hashes[i]:
                got, want = rec[key + "_inputs"], reference.input_hashes[i]
                changed = [j for j, (a, b) in enumerate(zip(got, want, strict=False)) if a != b]
                row.update(ok=False, reason=f"modified its inputs in place (input {changed}, {when})")
                break
            if key == "after" and rec["after"] is None:  # the child found it bitwise equal to the first answer
                continue
            cmp = _compare_call(rec[key + "_structure"], rec[key], ref_out, tol)
            row["max_abs_err"] = max(row["max_abs_err"], cmp.max_abs_err)
            row["rel_l2_err"] = max(row["rel_l2_err"], cmp.rel_l2_err)
            if not cmp.ok:
                row.update(ok=False, reason=f"{cmp.reason} ({when})")
                break
        if row["ok"] and rec["ref"] is not None:
            beside = _compare_call(rec["ref_structure"], rec["ref"], ref_out, tol)
            if not beside.ok:
                row.update(ok=False, reason="the reference computed in the candidate's process differs from the "
                           f"trusted one ({beside.reason}): the candidate changed torch's behaviour")
        results.append(row)
    return results


def _new_verdict(problem: Problem, candidate: Path, device: str, size: str, min_speedup: float) -> dict:
    return {"problem": str(problem.path), "candidate": str(candidate), "problem_sha256": problem.sha256,
            "candidate_sha256": sha256_file(candidate), "device": device, "size": size,
            "dtype": str(problem.dtype(size)).replace("torch.", ""),
            "compiled": False, "correct": False, "accepted": False, "reason": "", "stage": "static",
            "max_abs_err": None, "rel_l2_err": None, "tolerance": None, "trials": [], "baseline_ms": None,
            "candidate_ms": None, "speedup": None, "device_speedup": None, "wall_speedup": None,
            "baseline_wall_ms": None, "candidate_wall_ms": None, "min_speedup": min_speedup, "suspect": [],
            "warnings": [], "tampered": False, "hardware": {}, "versions": {}, "anchor": None, "feedback": "",
            "elapsed_s": None}


def _timing_checks(verdict: dict, reference: Reference, raw: dict, stats: dict, phase_parent_s: float) -> list[str]:
    """Rejections (returned) and suspect flags (added to the verdict) from the timing."""
    reject = []
    phase_child_s = raw["warmup_s"] + raw["loop_s"]
    if phase_child_s < 0.7 * phase_parent_s - 0.05:
        reject.append(f"the child's clock says the timing phase took {phase_child_s:.3f} s, this process's "
                      f"wall clock {phase_parent_s:.3f} s: its clock was tampered with")
    # The samples must account for the loop the parent's clock saw (on CUDA the L2 flush between samples is
    # outside them): a child that shrinks its samples on the way out, keeping the totals true, fails here.
    accounted = sum(raw["wall_s"]) * raw["reps"]
    if accounted < (0.1 if reference.device == "cuda" else 0.5) * raw["loop_s"] - 0.02:
        reject.append(f"the timing samples add up to {accounted:.3f} s of a {raw['loop_s']:.3f} s timing loop: "
                      "they were tampered with")
    if reference.device == "cuda" and any(d > w * 1.05 + 5e-6 for d, w in zip(raw["device_s"], raw["wall_s"], strict=True)):
        reject.append("a sample's device time exceeds the host wall time around it: the event timing was tampered with")
    ref_gap = reference.stats["wall_ms"] / max(reference.stats["median_ms"], 1e-9)
    gap = stats["wall_ms"] / max(stats["median_ms"], 1e-9)
    if gap > 2 * ref_gap and stats["wall_ms"] - stats["median_ms"] > 0.02:
        verdict["suspect"].append(
            f"host wall time {stats['wall_ms']:.4g} ms per call vs device time {stats['median_ms']:.4g} ms "
            f"(the reference's ratio is {ref_gap:.2f}): work the device clock does not see? "
            "The wall-clock speedup is used")
    nbytes, nflops = reference.work
    seconds = stats["median_ms"] / 1e3
    peaks = reference.peaks
    if nbytes and peaks.get("copy_gbps") and nbytes / seconds / 1e9 > 1.1 * peaks["copy_gbps"]:
        verdict["suspect"].append(f"achieved {nbytes / seconds / 1e9:.0f} GB/s, above the {peaks['copy_gbps']:.0f} GB/s "
                                  "this GPU copies at: does it do all the work?")
    if nflops and peaks.get("matmul_tflops") and nflops / seconds / 1e12 > 1.1 * peaks["matmul_tflops"]:
        verdict["suspect"].append(f"achieved {nflops / seconds / 1e12:.0f} TFLOP/s, above the "
                                  f"{peaks['matmul_tflops']:.0f} TFLOP/s torch reaches here: does it do all the work?")
    return reject


def judge_candidate(reference: Reference, candidate: Path, verdict: dict, deadline: float, memory_gb: float,
                    timing: TimingConfig) -> None:
    """Run the candidate in its own child and fill in the verdict."""
    workdir = Path(tempfile.mkdtemp(prefix="ch20-candidate-"))
    poison = [t.numel() * t.element_size() for t in reference.trial_outputs[0]["tensors"]]
    child = None
    stage = "import"
    try:
        shutil.copyfile(reference.inputs_file, workdir / "inputs.pt")   # a fresh copy: no candidate shares one
        cfg = _child_config("candidate", reference.problem, reference.device, reference.size, reference.dtype,
                            reference.model_seed, timing, workdir, memory_gb, candidate=str(candidate),
                            poison_sizes=poison)
        child = Child(cfg, workdir, deadline)
        msg = child.recv()
        if msg is not None and msg["event"] == "ready":
            verdict.update(compiled=True, stage="run")
            stage = "run"
            msg = child.recv()
        if msg is None:
            child.finish(grace_s=2)
            verdict.update(reason=f"the child process {child.exit_description()} during {stage}",
                           error=child.log_tail()[-1500:])
            return
        if msg["event"] in ("compile_error", "runtime_error"):
            compiled = msg["event"] == "runtime_error"
            where = "" if msg.get("trial") is None else (
                f" in trial {msg['trial']} ({reference.distributions[msg['trial']]} inputs, {msg['who']})")
            verdict.update(compiled=compiled, stage=msg["stage"], error=msg["error"],
                           reason=f"{'raised' if compiled else 'does not compile'}{where}: {msg['summary']}")
            return
        out = load_result(workdir / "outputs.pt")
        if len(out["trials"]) != len(reference.trial_outputs):  # every trial judged, not just those sent
            raise ForgedMessage(f"{len(out['trials'])} trial results for {len(reference.trial_outputs)} trials")
        trials = judge_outputs(reference, out["trials"])
        errs = [t["max_abs_err"] for t in trials]
        verdict.update(trials=trials, max_abs_err=max(errs), rel_l2_err=max(t["rel_l2_err"] for t in trials))
        bad = [t for t in trials if not t["ok"]]
        if bad:
            child.command("stop")
            verdict.update(stage="compare", reason=f"wrong in trial {bad[0]['trial']} ({bad[0]['distribution']} inputs): "
                           f"{bad[0]['reason']}")
            return
        verdict.update(correct=True, stage="timing")
        stage = "timing"
        child.command("time")
        msgs = {}
        while "timing" not in msgs:
            msg = child.recv()
            if msg is None:
                verdict.update(correct=False, reason=f"the child process {child.exit_description()} while timed",
                               error=child.log_tail()[-1500:])
                return
            if msg["event"] == "runtime_error":
                verdict.update(correct=False, reason=f"raised while timed: {msg['summary']}", error=msg["error"])
                return
            msgs[msg["event"]] = msg
        raw = msgs["timing"]["raw"]
        stats = timing_stats(raw)
        phase = child.stamps.get("timing_end", 0) - child.stamps.get("timing_start", 0)
        timed_file = load_result(workdir / "timed.pt")
        timed = timed_file["timed"]
        for i, got in enumerate(timed):
            if got["structure"] is None:
                continue
            cmp = _compare_call(got["structure"], got["tensors"], reference.timing_outputs[i], reference.problem.tolerance)
            if not cmp.ok:
                verdict.update(correct=False, reason="the outputs of the timed calls differ from the reference "
                               f"({cmp.reason}): a kernel that behaves differently when timed")
                return
        if len(timed_file["canary"]) != len(timed):
            raise ForgedMessage("the timed results lack the canary calls")
        for i, got in enumerate(timed_file["canary"]):
            cmp = _compare_call(got["structure"], got["tensors"], reference.trial_outputs[i % len(reference.trial_outputs)],
                                reference.problem.tolerance)
            if not cmp.ok:
                verdict.update(correct=False, reason="after timing, with new contents written into the same input tensors, "
                               f"the output is wrong ({cmp.reason}): an answer cached by input identity?")
                return
        rejects = _timing_checks(verdict, reference, raw, stats, phase)
        base = reference.stats
        device_speedup = base["median_ms"] / stats["median_ms"]
        wall_speedup = base["wall_ms"] / stats["wall_ms"]
        gap_flagged = any("wall-clock speedup is used" in s for s in verdict["suspect"])
        speedup = min(device_speedup, wall_speedup) if gap_flagged else device_speedup
        verdict.update(baseline_ms=base["median_ms"], candidate_ms=stats["median_ms"], baseline_wall_ms=base["wall_ms"],
                       candidate_wall_ms=stats["wall_ms"], device_speedup=device_speedup, wall_speedup=wall_speedup,
                       speedup=speedup, stage="done",
                       timing={"baseline": base, "candidate": stats, "timed_calls": msgs["timing"]["calls"],
                               "phase_s_parent": phase, "phase_s_child": raw["warmup_s"] + raw["loop_s"],
                               "config": asdict(timing)})
        if speedup > SUSPECT_SPEEDUP:
            verdict["suspect"].append(f"speedup {speedup:.1f}x is over {SUSPECT_SPEEDUP:g}x: check the work is all done")
        if rejects:
            verdict.update(reason="; ".join(rejects), tampered=True)
            verdict["suspect"].extend(rejects)
            return
        if speedup < verdict["min_speedup"]:
            verdict.update(reason=f"correct, but {speedup:.3g}x is below --min-speedup {verdict['min_speedup']:g}")
            return
        verdict.update(accepted=True, reason=f"correct on {len(trials)} trials and {speedup:.3g}x the reference")
    except ChildTimeout:
        verdict.update(correct=False, reason=f"timed out during {stage} (no answer within --timeout)")
    except ForgedMessage as exc:
        verdict.update(correct=False, accepted=False, reason=str(exc), tampered=True)
    finally:
        if child is not None:
            child.finish(grace_s=5)
        shutil.rmtree(workdir, ignore_errors=True)


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
        lines.append(f"Correct on {len(verdict['trials'])} trials "
                     f"({', '.join(sorted({t['distribution'] for t in verdict['trials']}))} inputs), "
                     f"max abs error {verdict['max_abs_err']:.3g}.")
        if verdict["speedup"] is not None:
            lines.append(f"Timing: reference {verdict['baseline_ms']:.4g} ms, yours {verdict['candidate_ms']:.4g} ms: "
                         f"{verdict['speedup']:.3g}x. " + ("Accepted." if verdict["accepted"] else verdict["reason"]))
        else:
            lines.append(verdict["reason"])
    if verdict.get("error"):
        lines.append("Error output (last lines):\n" + "\n".join(verdict["error"].splitlines()[-12:]))
    lines += [f"Suspect: {s}" for s in verdict["suspect"]]
    lines += [f"Warning, line {w['line']}: {w['message']}" for w in verdict["warnings"]]
    return "\n".join(lines)


def verify(problem: str | Path | Problem, candidate: str | Path, *, device: str = "auto", size: str | None = None,
           trials: int = 5, timeout: float = 120.0, min_speedup: float = 1.0, reference: Reference | None = None,
           timing: TimingConfig | None = None, memory_gb: float = 16.0) -> dict:
    """The whole verdict as a dict (see the module docstring). `reference` lets a loop reuse one reference
    run (its inputs, outputs and timing) for many candidates; without it a fresh one is made."""
    started = time.monotonic()
    deadline = started + timeout
    if reference is not None:
        problem = reference.problem
    elif not isinstance(problem, Problem):
        problem = load_problem(problem)
    candidate = Path(candidate).resolve()
    if not candidate.is_file():
        raise UsageError(f"no candidate file {candidate}")
    if reference is not None:
        dev, size = reference.device, reference.size
    else:
        try:
            dev = pick_device(device).type
        except (RuntimeError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
        size = size or ("full" if dev == "cuda" else "tiny")
    timing = timing or default_timing(dev)
    verdict = _new_verdict(problem, candidate, dev, size, min_speedup)
    syntax_error, verdict["warnings"] = screen(candidate.read_text(errors="replace"))
    if syntax_error:
        verdict.update(reason=f"does not compile: {syntax_error}")
    else:
        if reference is None:
            reference = run_reference(problem, device=dev, size=size, trials=trials, timing=timing, deadline=deadline,
                                      memory_gb=memory_gb)
        verdict.update(tolerance=reference.tolerance(), hardware=reference.hardware, versions=reference.versions,
                       anchor=reference.anchor, peaks=reference.peaks)
        judge_candidate(reference, candidate, verdict, deadline, memory_gb, timing)
    verdict["feedback"] = feedback(verdict)
    verdict["elapsed_s"] = round(time.monotonic() - started, 3)
    return verdict


def summary(verdict: dict) -> str:
    ok = "ACCEPTED" if verdict["accepted"] else "REJECTED"
    lines = [f"{Path(verdict['candidate']).name} for {Path(verdict['problem']).name} "
             f"[{verdict['device']}, size {verdict['size']}, {verdict['dtype']}]: {ok}: {verdict['reason']}"]
    if verdict["trials"]:
        lines.append("  trials: " + ", ".join(f"{t['distribution']} {'ok' if t['ok'] else 'WRONG'}"
                                              for t in verdict["trials"])
                     + (f"; max abs err {verdict['max_abs_err']:.3g}" if verdict["max_abs_err"] is not None else "")
                     + (f" (rtol {verdict['tolerance']['rtol']:g}, atol {verdict['tolerance']['atol']:g})"
                        if verdict["tolerance"] else ""))
    if verdict["speedup"] is not None:
        lines.append(f"  reference {verdict['baseline_ms']:.4g} ms, candidate {verdict['candidate_ms']:.4g} ms: "
                     f"{verdict['speedup']:.3g}x (host wall: {verdict['baseline_wall_ms']:.4g} vs "
                     f"{verdict['candidate_wall_ms']:.4g} ms)")
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
    p.add_argument("--certificate", type=Path, help="re-check a certificate on this machine and report drift")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--size", choices=["tiny", "small", "full"], help="default: full on a GPU, tiny on the CPU")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole verification")
    p.add_argument("--min-speedup", type=float, default=1.0)
    p.add_argument("--memory-gb", type=float, default=16.0, help="address-space limit of the child (CPU runs)")
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
                         timeout=args.timeout, min_speedup=args.min_speedup, memory_gb=args.memory_gb)
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
