"""Run one example in this process: verify every variant against the baseline, then time them all, interleaved.

`python -m harness.runner FILE --options OPTS.json --json OUT.json` is what the sweep starts in a child process
for each example; the result goes to a file rather than stdout, so an example's own prints cannot corrupt it.

What a variant must get through (each failure names what it caught). The baseline's answers for every check
are computed first, before any other variant has run, and the baseline must still give them later.
1. verification trials on freshly drawn inputs, cycling through the example's declared distributions; in the
   first trial the other variants run before the baseline; the allocator is NaN-poisoned before each call;
   each non-baseline variant is called twice per trial (state carried between calls shows); a call that
   writes into its inputs, returns memory of an input or leaves a thread running fails unless declared;
2. timing in interleaved rounds on input sets whose contents are drawn afresh before every sample (no timed
   call sees contents seen before), the last output of randomly chosen samples checked against answers
   computed before timing;
3. after timing, contents with a known answer written into the very tensors it was timed on, one more check.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

from harness import environment, inputs, verify
from harness.device import pick_device, synchronize
from harness.example import Example, VariantSpec, load_example, range_name
from harness.result import ExampleResult, RunOptions, VariantResult, default_size
from harness.timing import TimingConfig, measure_interleaved, quantile

SPEEDUP_REVIEW = 10.0       # a speedup above this is flagged for a human to check the baseline
CHECK_SHARE = 8             # about one timed sample in this many has its last output checked (the first always) ...
CHECKS_MAX = 50             # ... up to this many per variant
POOL_MAX = 256              # input sets in rotation while timing: a sample never has more calls than sets
RESERVE_MAX = 9             # input sets whose answers are computed before timing, for the checks ...
RESERVE_SETUP_S = 2.0       # ... fewer where drawing them would take longer than this
SETUP_BUDGET_S = 0.02       # time spent drawing fresh inputs before each sample, at most (sets the pool size)
POOL_BYTES = {"cuda": 4 << 30, "cpu": 64 << 20}


class VariantFailure(Exception):
    """What a variant did wrong; the message says it."""


_CALLED: set[str] = set()   # variants that have made their first call in this process


def _call(spec: VariantSpec, ex: Example, args, device: torch.device, poison: list[int]) -> list[torch.Tensor]:
    """One checked call: outputs copied right away; inputs fingerprinted and aliasing checked unless declared."""
    args = inputs.clone(args) if ex.mutates_inputs else args
    before = None if ex.mutates_inputs else inputs.Fingerprint(args)
    threads = threading.active_count()
    verify.poison_allocator(device, poison)
    try:
        with torch.no_grad():
            raw = verify.flatten(spec.fn(args))
        synchronize(device)
    finally:
        changed = before.changed() if before else None
        if changed:
            before.restore()
    if changed:
        raise VariantFailure(f"{changed} by the call (declare mutates_inputs if it works in place)")
    # Work going on after the call returned is work no timer sees (unless the example says its variants keep threads).
    # A variant's first call may start its runtime's threads for good (torch.compile's, on a GPU): those are
    # counted from then on, and a thread any later call leaves behind fails it.
    first = spec.name not in _CALLED
    _CALLED.add(spec.name)
    if threading.active_count() > threads and not ex.keeps_threads and not first:
        raise VariantFailure(f"left {threading.active_count() - threads} thread(s) running after it returned "
                             "(declare keeps_threads if they are a data loader's workers, say)")
    if not ex.output_may_alias_input:
        shared = inputs.aliases(raw, args)
        if shared:
            raise VariantFailure(f"{shared} (return a new tensor, or declare output_may_alias_input)")
    return verify.snapshot(raw)


def _judge(out, ref, ex: Example, when: str) -> verify.Comparison:
    cmp = verify.compare(out, ref, ex.tolerance)
    if not cmp.ok:
        cmp.reason = f"{when}: {cmp.reason}"
    return cmp


class _Answers:
    """Input sets with the baseline's answers, all computed before any other variant has run.

    Every comparison is with these, never with a baseline run after the other variants: a variant that changes
    global state (patching a function the baseline calls, say) cannot make the baseline agree with it, and the
    baseline's own answer changing later is caught as exactly that. Also the output sizes to poison.
    """

    def __init__(self, ex: Example, base: VariantSpec, size: str, device: torch.device, seed: int, trials: int):
        dists = ex.distributions or (None,)
        t0 = time.perf_counter()
        args = ex.make_inputs(size, device, seed - 1, dists[0])
        setup_s = time.perf_counter() - t0
        self.poison = [t.numel() * t.element_size() for t in _call(base, ex, args, device, [])]
        by_bytes = POOL_BYTES.get(device.type, POOL_BYTES["cpu"]) // max(1, inputs.nbytes(args))
        reserve = max(2, min(RESERVE_MAX, by_bytes, int(RESERVE_SETUP_S / max(setup_s, 1e-6))))
        del args
        self.trials = [self._draw(ex, base, size, device, seed + t, dists[t % len(dists)])
                       for t in range(max(trials, len(dists)))]
        # The reserve's contents are written into timed input sets: the timing distribution (the first) only.
        self.reserve = [self._draw(ex, base, size, device, seed + 50_000 + k, dists[0]) for k in range(reserve)]
        self._next = 0

    def _draw(self, ex, base, size, device, seed, dist):
        args = ex.make_inputs(size, device, seed, dist)
        try:
            return dist, args, _call(base, ex, args, device, self.poison)
        except Exception as exc:
            raise RuntimeError(f"the baseline failed: {_one_line(exc)}") from exc

    def take(self):
        """Inputs and answer for a timed check (all reserve sets but the last, in turn)."""
        _, args, answer = self.reserve[self._next % max(1, len(self.reserve) - 1)]
        self._next += 1
        return args, answer

    @property
    def last(self):
        """Kept for the check after timing."""
        return self.reserve[-1][1:]


def _verify(ex: Example, specs: list[VariantSpec], answers: _Answers, device: torch.device) -> dict[str, verify.Comparison]:
    """Compare each variant with the baseline's answers over several draws (the baseline's too: global state)."""
    base = specs[0]
    results: dict[str, verify.Comparison] = {}
    for trial, (dist, args, answer) in enumerate(answers.trials):
        label = f"trial {trial}" + (f" ({dist} inputs)" if dist else "")
        order = specs[1:] + specs[:1] if trial == 0 else specs
        for spec in order:
            if not results.get(spec.name, verify.Comparison(True)).ok:
                continue  # already failed: no need to run it again
            try:
                outs = [_call(spec, ex, args, device, answers.poison)
                        for _ in range(1 if spec.role == "baseline" else 2)]
            except Exception as exc:  # a broken variant fails alone; a broken baseline fails the example
                if spec.role == "baseline":
                    raise RuntimeError(f"the baseline failed on {label}: {_one_line(exc)}") from exc
                results[spec.name] = verify.Comparison(False, f"{label}: {_one_line(exc)}")
                continue
            if spec is base:
                again = _judge(outs[0], answer, ex, f"{label}, the baseline after the other variants ran")
                if not again.ok:
                    raise RuntimeError(f"the baseline's answer changed once other variants had run (one changed "
                                       f"global state?): {again.reason}")
                continue
            for call, out in enumerate(outs):
                cmp = _judge(out, answer, ex, label + (", second call on the same inputs" if call else ""))
                prev = results.get(spec.name)
                if prev is None or (prev.ok and (not cmp.ok or cmp.max_abs_err >= prev.max_abs_err)):
                    results[spec.name] = cmp
    return results


class _Pool:
    """Input sets for the timed calls: call i of a sample uses set i (a sample has at most K calls); contents drawn
    afresh before each sample, so no timed call sees contents seen before."""

    def __init__(self, ex: Example, size: str, device: torch.device, seed: int):
        self.ex, self.size, self.device = ex, size, device
        self._seed = seed
        t0 = time.perf_counter()
        first = self._draw()
        setup_s = time.perf_counter() - t0
        by_bytes = POOL_BYTES.get(device.type, POOL_BYTES["cpu"]) // max(1, inputs.nbytes(first))
        by_time = int(SETUP_BUDGET_S / max(setup_s, 1e-6)) if ex.fresh_inputs else 2
        self.size_k = max(2, min(POOL_MAX, by_bytes, by_time))
        self.sets = [first] + [self._draw() for _ in range(self.size_k - 1)]

    def _draw(self):
        # Timing draws from the first distribution only: a median over samples of mixed shapes or value patterns
        # (a ragged shape that sends cuBLAS to a slow kernel, say) would describe none of them.
        self._seed += 1
        return self.ex.make_inputs(self.size, self.device, self._seed, (self.ex.distributions or (None,))[0])

    def refresh(self, used: int) -> None:
        """New contents for the first `used` sets (those the next sample's calls will read)."""
        if self.ex.fresh_inputs:
            for k in range(min(used, self.size_k)):
                self.sets[k] = self._draw()
            synchronize(self.device)

    def describe(self) -> str:
        if self.ex.fresh_inputs:
            return f"{self.size_k} input sets, drawn afresh before every sample: every timed call sees new contents"
        return f"{self.size_k} input sets drawn once and rotated (the example draws its inputs too slowly to renew them)"


def example_id(path: Path) -> str:
    """`ch7/copy_bandwidth` for ch7/copy_bandwidth.py: its folder and its name."""
    path = Path(path)
    return f"{path.resolve().parent.name}/{path.stem}"


def run_example(ex: Example, *, device: torch.device, size: str, seed: int, timing: TimingConfig | None = None,
                trials: int = 3, example_id: str = "") -> ExampleResult:
    """Verify, time and describe one example (peaks, targets and expectations are the parent's)."""
    res = ExampleResult(id=example_id, chapter=example_id.partition("/")[0], title=ex.title, size=size, seed=seed,
                        device=device.type, teaching_baseline=ex.teaching_baseline,
                        items_unit=ex.items_unit, flops_dtype=ex.flops_dtype, bandwidth_ceiling=ex.bandwidth_ceiling)
    unmet = ex.requires.unmet(device)
    if unmet:
        res.status, res.reason = "skipped", unmet
        return res
    specs = ex.variants()
    rows = {s.name: VariantResult(name=s.name, role=s.role, teaching=s.teaching, note=s.note) for s in specs}
    res.variants = list(rows.values())
    runnable = []
    for spec in specs:
        why = spec.requires.unmet(device)
        if why and spec.role == "baseline":
            res.status, res.reason = "skipped", f"baseline {spec.name}: {why}"
            return res
        if why:
            rows[spec.name].status, rows[spec.name].reason = "skipped", why
        else:
            runnable.append(spec)

    answers = _Answers(ex, runnable[0], size, device, seed, trials)
    checks = _verify(ex, runnable, answers, device)
    for spec in runnable:
        row, check = rows[spec.name], checks.get(spec.name)
        if check is None:   # the baseline: the reference point
            row.verified = True
            continue
        row.max_abs_err, row.rel_l2_err, row.tolerance = check.max_abs_err, check.rel_l2_err, [check.rtol, check.atol]
        row.verified = check.ok
        if not check.ok:
            row.fail(check.reason)

    timed = [s for s in runnable if rows[s.name].verified]
    timing = timing or TimingConfig()
    cold = (timing.cold_l2 or ex.cold_l2)
    res.cold_l2, res.cold_l2_applied = cold, cold and device.type == "cuda"
    if device.type != "cuda" and timing.min_sample_s > 2e-4:
        timing = TimingConfig(**{**timing.__dict__, "min_sample_s": 2e-4})  # no sync to amortize on the CPU
    cfg = TimingConfig(**{**timing.__dict__, "cold_l2": res.cold_l2_applied})
    _time(ex, timed, rows, res, size, device, seed + 1000, cfg, answers)

    res.settle()
    headline = res.speedup()
    if headline and headline > SPEEDUP_REVIEW:
        res.flags.append(f"speedup {headline:.1f}x is over {SPEEDUP_REVIEW:g}x: review the baseline")
    if ex.teaching_baseline:
        res.flags.append("teaching baseline: kept out of headline figures")
    return res


def _time(ex: Example, specs: list[VariantSpec], rows: dict[str, VariantResult], res: ExampleResult, size: str,
          device: torch.device, seed: int, cfg: TimingConfig, answers: _Answers) -> None:
    if not specs or specs[0].role != "baseline":
        return
    base, poison = specs[0], answers.poison
    pool = _Pool(ex, size, device, seed)
    fns = {s.name: (lambda i, fn=s.fn: fn(pool.sets[i])) for s in specs}
    rng = secrets.SystemRandom()
    checking: dict[str, list[torch.Tensor] | None] = {}   # variant -> the answer its sample's last call must give
    samples_seen: dict[str, int] = {}

    def before(name: str, reps: int) -> None:
        """Fresh contents for the sets this sample uses; maybe reserve contents (answer known) for its last call."""
        pool.refresh(max(reps, 1))
        n = samples_seen[name] = samples_seen.get(name, 0) + (1 if reps else 0)
        checking[name] = None
        wanted = n == 1 or (rows[name].timed_checks < CHECKS_MAX and not rng.randrange(CHECK_SHARE))
        if reps and name != base.name and rows[name].status != "failed" and wanted:
            args, answer = answers.take()
            inputs.refill(pool.sets[reps - 1], args)   # in place: the same tensors, contents whose answer is known
            checking[name] = answer

    def after(name: str, out, reps: int) -> None:
        """Compare what the sample's last call returned with the answer computed before timing began."""
        answer = checking.get(name)
        if answer is None:
            return
        cmp = _judge(verify.snapshot(out), answer, ex, f"a timed call (sample {samples_seen[name]})")
        rows[name].timed_checks += 1
        if not cmp.ok:
            rows[name].fail(cmp.reason)

    def nvtx(name: str):
        """Each variant's timed samples in an NVTX range, named as the profilers name it."""
        if device.type != "cuda":
            return contextlib.nullcontext()
        return torch.cuda.nvtx.range(range_name(res.id or f"example/{ex.title}", name))

    res.environment["gpu_before"] = environment.gpu_state(device)
    with torch.no_grad():
        timed = measure_interleaved(fns, device, cfg, before_sample=before, after_sample=after,
                                    sample_context=nvtx, max_reps=pool.size_k)
    res.environment["gpu_after"] = environment.gpu_state(device)
    res.input_rotation = pool.describe()

    # New contents in the very tensors that were timed (an answer cached by identity is now stale), with the
    # answer computed before timing; the baseline must still give it too (else something changed global state).
    args = pool.sets[0]
    after_inputs, answer = answers.last
    inputs.refill(args, after_inputs)
    try:
        again = _judge(_call(base, ex, args, device, poison), answer, ex, "the baseline after timing")
    except Exception as exc:
        raise RuntimeError(f"the baseline failed after timing: {_one_line(exc)}") from exc
    if not again.ok:
        raise RuntimeError(f"the baseline's answer changed during timing (a variant changed global state?): "
                           f"{again.reason}")
    inputs.refill(args, after_inputs)
    nbytes = ex.bytes_moved(args) if ex.bytes_moved else None
    nflops = ex.flops(args) if ex.flops else None
    nitems = ex.items(args) if ex.items else None
    for spec in specs:
        row, stats = rows[spec.name], timed.stats[spec.name]
        if row.status == "failed":
            continue
        if spec is not base:
            try:
                cmp = _judge(_call(spec, ex, args, device, poison), answer, ex,
                             "after timing, on new contents in the same input tensors")
                inputs.refill(args, after_inputs)   # for the next variant, should this one work in place
            except Exception as exc:
                cmp = verify.Comparison(False, f"after timing: {_one_line(exc)}")
            if not cmp.ok:
                row.fail(cmp.reason)
                continue
        row.median_ms, row.p25_ms, row.p75_ms, row.min_ms = stats.median_ms, stats.p25_ms, stats.p75_ms, stats.min_ms
        row.samples, row.reps, row.converged, row.wall_ms = stats.samples, stats.reps, stats.converged, stats.wall_ms
        row.samples_ms = [round(x, 6) for x in stats.samples_ms]
        if spec is not base:
            ratios = sorted(timed.paired_ratios(base.name, spec.name))
            row.paired_speedup = statistics.median(ratios)
            row.paired_speedup_p25, row.paired_speedup_p75 = quantile(ratios, 0.25), quantile(ratios, 0.75)
        seconds = stats.median_ms / 1e3
        row.gbps = nbytes / seconds / 1e9 if nbytes else None
        row.tflops = nflops / seconds / 1e12 if nflops else None
        row.items_per_s = nitems / seconds if nitems else None
        if not stats.converged:
            res.flags.append(f"{spec.name}: timing noisy (median not within {cfg.max_rel_error:.1%} after "
                             f"{stats.samples} samples)")


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, VariantFailure) else f"{type(exc).__name__}: {exc}"
    return (text.splitlines() or [""])[0][:300]


def run_in_child(file: Path, opts: RunOptions) -> ExampleResult:
    """The child's whole job: threads and affinity first, then the example, with the environment recorded."""
    env = {"load_before": environment.load_average()}
    seed = opts.seed if opts.seed is not None else secrets.randbelow(2**31)
    size = opts.size
    t0 = time.perf_counter()
    try:
        device = pick_device(opts.device)
        env["device"] = device.type
        # CPU timing: a fixed pool on the least busy cores. On a GPU only the pool is fixed: pinning the process
        # to one core would also pin the driver's threads there, and slow every launch.
        env["cpu"] = environment.pin_threads(opts.cpu_threads, affinity=device.type == "cpu")
        size = size or default_size(device.type)
        ex = load_example(file)
        res = run_example(ex, device=device, size=size, seed=seed, trials=opts.trials, example_id=example_id(file),
                          timing=TimingConfig(cold_l2=opts.cold_l2, max_time_s=opts.max_time_s))
    except Exception as exc:  # recorded as this example's status; the sweep goes on
        traceback.print_exc()
        res = ExampleResult.failure("failed", f"{type(exc).__name__}: {exc}".splitlines()[0][:500], seed=seed, size=size)
        env.setdefault("cpu", {})
    env["load_after"] = environment.load_average()
    res.environment = {**env, **res.environment}
    if res.status != "skipped":
        res.flags += environment.flags(res.environment)
    res.elapsed_s = round(time.perf_counter() - t0, 3)
    return res


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.runner")
    parser.add_argument("file", type=Path)
    parser.add_argument("--options", type=Path, required=True, help="RunOptions as JSON")
    parser.add_argument("--json", type=Path, required=True, help="where the ExampleResult goes")
    args = parser.parse_args(argv)
    opts = RunOptions.from_json(args.options.read_text())
    res = run_in_child(args.file, opts)
    args.json.write_text(json.dumps(res.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
