"""Run one example in this process: verify every optimized variant, then time them all.

`python -m harness.runner FILE --json OUT ...` is what the sweep starts in a child process for each
example; the result goes to a file rather than stdout, so an example's own prints cannot corrupt it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import traceback
from pathlib import Path

import torch

from harness import verify
from harness.device import pick_device, synchronize
from harness.example import SIZES, Example, load_example
from harness.timing import TimingConfig, measure

try:  # NVTX ranges let Nsight tools and the profiling harness find each variant's timed region
    from nvtx import annotate as nvtx_range
except ImportError:
    def nvtx_range(message: str, **_):
        return contextlib.nullcontext()

TRIALS = 3                 # verification trials, each on freshly drawn inputs
SPEEDUP_REVIEW = 10.0      # a speedup above this is flagged for a human to check the baseline


def _call(fn, inputs, device: torch.device, poison: list[int]) -> list[torch.Tensor]:
    """One call, its outputs copied, with NaN left first wherever outputs of these sizes would be allocated."""
    verify.poison_allocator(device, poison)
    with torch.no_grad():
        out = verify.snapshot(fn(inputs))
    synchronize(device)
    return out


def _verify(ex: Example, size: str, device: torch.device, seed: int, trials: int) -> dict[str, verify.Comparison]:
    """Compare each optimized variant with the baseline over several seeds.

    The first trial runs the optimized variants *before* the baseline, and the allocator is poisoned
    before every call, so an output that is never written cannot pass by holding an earlier answer.
    Each optimized variant is called twice on the same inputs and both answers must match: one that
    carries state from call to call (an accumulator never reset) fails here, as it would while timed.
    """
    results: dict[str, verify.Comparison] = {}
    variants = ex.variants()
    # A baseline call on inputs of its own tells which output sizes to poison, the first call included.
    poison = [t.numel() * t.element_size() for t in _call(ex.baseline.fn, ex.setup(size, device, seed - 1), device, [])]
    for trial in range(trials):
        inputs = ex.setup(size, device, seed + trial)
        order = variants[1:] + variants[:1] if trial == 0 else variants
        outputs: dict[str, list[list[torch.Tensor]]] = {}
        for name, role, fn, *_ in order:
            if not results.get(name, verify.Comparison(True)).ok:
                continue  # already failed: no need to run it again
            try:
                outputs[name] = [_call(fn, inputs, device, poison) for _ in range(1 if role == "baseline" else 2)]
            except Exception as exc:  # a broken variant fails alone; a broken baseline fails the example
                if role == "baseline":
                    raise
                results[name] = verify.Comparison(False, f"raised {type(exc).__name__}: {exc}".splitlines()[0][:300])
        ref = outputs[ex.baseline_name][0]
        for name, role, *_ in variants:
            for call, out in enumerate(outputs.get(name, []) if role == "optimized" else []):
                cmp = verify.compare(out, ref, ex.tolerance)
                if not cmp.ok and call == 1:
                    cmp.reason = f"second call on the same inputs: {cmp.reason}"
                prev = results.get(name)
                if prev is None or (prev.ok and (not cmp.ok or cmp.max_abs_err >= prev.max_abs_err)):
                    results[name] = cmp
        del inputs, outputs, ref
    return results


def run_example(ex: Example, *, device: torch.device, size: str, seed: int,
                timing: TimingConfig | None = None, trials: int = TRIALS) -> dict:
    """A result dict for results.json (without targets, which the sweep adds)."""
    result = {"title": ex.title, "size": size, "seed": seed, "status": "ok", "reason": "", "variants": [],
              "speedup": None, "flags": [], "teaching_baseline": ex.teaching_baseline, "items_unit": ex.items_unit,
              "flops_dtype": ex.flops_dtype, "bandwidth_ceiling": ex.bandwidth_ceiling}
    unmet = ex.requires.unmet(device)
    if unmet:
        return {**result, "status": "skipped", "reason": unmet}

    checks = _verify(ex, size, device, seed, trials)
    failed = {name: c for name, c in checks.items() if not c.ok}

    inputs = ex.setup(size, device, seed + trials)
    nbytes = ex.bytes_moved(inputs) if ex.bytes_moved else None
    nflops = ex.flops(inputs) if ex.flops else None
    nitems = ex.items(inputs) if ex.items else None
    timing = timing or TimingConfig()
    cfg = TimingConfig(**{**timing.__dict__, "cold_l2": timing.cold_l2 or ex.cold_l2})

    poison = [t.numel() * t.element_size() for t in _call(ex.baseline.fn, inputs, device, [])]
    base_after = None
    for name, role, fn, *_ in ex.variants():
        check = checks.get(name)
        row = {"name": name, "role": role, "verified": True if role == "baseline" else check.ok,
               "max_abs_err": None if check is None else check.max_abs_err,
               "rel_l2_err": None if check is None else check.rel_l2_err,
               "tolerance": None if check is None else [check.rtol, check.atol],
               "median_ms": None, "iqr_ms": None, "samples": 0, "gbps": None, "tflops": None, "items_per_s": None}
        if row["verified"]:  # an unverified variant is not timed: it gets no speedup
            with torch.no_grad(), nvtx_range(f"{ex.title}: {name}"):
                stats = measure(lambda fn=fn: fn(inputs), device, cfg)
            seconds = stats.median_ms / 1e3
            row.update(median_ms=stats.median_ms, iqr_ms=stats.iqr_ms, samples=stats.samples, reps=stats.reps,
                       converged=stats.converged, wall_ms=stats.wall_ms)
            row["gbps"] = nbytes / seconds / 1e9 if nbytes else None
            row["tflops"] = nflops / seconds / 1e12 if nflops else None
            row["items_per_s"] = nitems / seconds if nitems else None
            # The answer after hundreds of timed calls must still be the baseline's (no state, no caching).
            after = _call(fn, inputs, device, poison)
            if role == "baseline":
                base_after = after
            else:
                cmp = verify.compare(after, base_after, ex.tolerance)
                if not cmp.ok:
                    failed[name] = verify.Comparison(False, f"after timing: {cmp.reason}")
                    row.update(verified=False, median_ms=None, gbps=None, tflops=None, items_per_s=None)
            if not stats.converged:
                result["flags"].append(f"{name}: timing noisy (median not within 0.5% after {stats.samples} samples)")
        result["variants"].append(row)

    base = result["variants"][0]["median_ms"]
    fastest = min((v["median_ms"] for v in result["variants"][1:] if v["verified"]), default=None)
    result["speedup"] = base / fastest if fastest else None
    if failed:
        result["status"] = "failed"
        result["reason"] = "; ".join(f"{name} not verified: {c.reason}" for name, c in failed.items())
    if result["speedup"] and result["speedup"] > SPEEDUP_REVIEW:
        result["flags"].append(f"speedup {result['speedup']:.1f}x is over {SPEEDUP_REVIEW:g}x: review the baseline")
    if ex.teaching_baseline:
        result["flags"].append("teaching baseline: kept out of headline figures")
    return result


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.runner")
    parser.add_argument("file", type=Path)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--size", choices=SIZES, required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--cold-l2", action="store_true")
    parser.add_argument("--max-time", type=float, default=TimingConfig.max_time_s)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    try:
        device = pick_device(args.device)
        ex = load_example(args.file)
        result = run_example(ex, device=device, size=args.size, seed=seed,
                             timing=TimingConfig(cold_l2=args.cold_l2, max_time_s=args.max_time))
    except Exception as exc:  # recorded as this example's status; the sweep goes on
        traceback.print_exc()
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
                  "seed": seed, "size": args.size, "variants": [], "speedup": None, "flags": []}
    args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
