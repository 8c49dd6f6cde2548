"""The trusted side of a verification: a live reference child, and the batch size it calibrated.

``run_reference`` starts the reference child (it imports only the problem), checks the reference stays
finite on every declared input distribution, picks the number of calls per batch (long enough that the
parent's request/reply costs little, small enough that both children hold a batch in device memory)
and records the reference's output digest on a fixed probe input (a certificate's anchor). One reference
serves many candidates in turn (a loop does that); each candidate is interleaved with it round by round.
"""
from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import dataclass, field

from ch20._process import Child, ChildTimeout, ForgedMessage
from ch20.problem import Problem, ProblemError

PROBE_SEED = 20_240_520      # the fixed input whose reference output anchors a certificate
# parent-timed batches at least this long (a CPU batch spans several scheduler time slices, so one preemption
# or a late wake-up is a small part of it) ...
BATCH_TARGET_S = {"cuda": 0.02, "cpu": 0.04}
MAX_CALLS = 512                                 # ... of at most this many calls
HOST_BATCH_BYTES = 256 << 20                    # CPU: what one child may hold for a batch
DEVICE_BATCH_SHARE = 0.15                       # CUDA: share of free device memory one child's batch may hold


class UsageError(Exception):
    pass


@dataclass
class Reference:
    problem: Problem
    device: str
    size: str
    dtype: str
    model_seed: int
    digest_key: tuple[int, int]
    threads: int
    trials: int
    child: Child = field(repr=False)
    checker: Child | None = field(default=None, repr=False)   # a second reference process that judges exports
    hardware: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    digest_method: str = ""
    calls_per_batch: int = 1
    in_bytes: int = 0
    out_bytes: int = 0
    anchor: dict = field(default_factory=dict)
    calibration: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    used_distributions: tuple[str, ...] = ()   # the problem's, less defaults the reference is not finite on
    left_out: dict = field(default_factory=dict)   # distribution -> why it was left out
    input_dtype: str = ""                          # the first float input's dtype as drawn (what "dtype" reports)

    @property
    def distributions(self) -> tuple[str, ...]:
        return self.used_distributions or self.problem.distributions

    @property
    def dtype_label(self) -> str:
        return self.dtype or self.input_dtype or "float32"

    def tolerance(self) -> dict:
        import torch

        from harness import verify as hv
        dtype = getattr(torch, self.anchor["dtypes"][0]) if self.anchor.get("dtypes") else torch.float32
        rtol, atol = self.problem.tolerance or hv.tolerance_for(dtype)
        return {"rtol": rtol, "atol": atol, "dtype": str(dtype).replace("torch.", ""),
                "source": "the problem's TOLERANCE" if self.problem.tolerance else "harness.verify, by output dtype"}

    def close(self) -> None:
        self.child.finish(grace_s=2)
        if self.checker is not None:
            self.checker.finish(grace_s=2)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter teardown
            pass


def child_config(role: str, problem: Problem, device: str, size: str, dtype: str, model_seed: int,
                 key: tuple[int, int], threads: int, **extra) -> dict:
    return {"role": role, "device": device, "size": size, "dtype": dtype, "model_seed": model_seed,
            "digest_key": list(key), "threads": threads, "problem_source": problem.source,
            "problem_file": f"<problem {problem.path.name}>", **extra}


def expect(msg: dict | None, event: str, child: Child, who: str) -> dict:
    if msg is None:
        raise ProblemError(f"the {who} child {child.exit_description()}: {child.log_tail()[-800:]}")
    if msg["event"] in ("compile_error", "runtime_error"):
        raise ProblemError(f"the {who} itself fails ({msg.get('stage')}): {msg.get('summary')}\n{msg.get('error')}")
    if msg["event"] != event:
        raise ProblemError(f"the {who} child answered {msg['event']!r}, expected {event!r}")
    return msg


def nbytes(shapes: list, dtypes: list) -> int:
    import torch
    return sum(math.prod(s) * torch.empty(0, dtype=getattr(torch, d)).element_size() for s, d in zip(shapes, dtypes, strict=True))


def new_secrets() -> tuple[int, tuple[int, int]]:
    """The model seed (both children build their model after seeding with it) and the digest key."""
    return secrets.randbits(31), (secrets.randbits(29), secrets.randbits(29))


def run_reference(problem: Problem, *, device: str, size: str, trials: int = 5, threads: int = 1,
                  timeout: float = 600.0, batch_target_s: float | None = None,
                  secrets_: tuple[int, tuple[int, int]] | None = None) -> Reference:
    """Start the reference child and calibrate; raises ProblemError when the reference itself fails."""
    if trials < 1:
        raise UsageError("--trials must be at least 1")
    if threads < 1:
        raise UsageError("--threads must be at least 1")
    deadline = time.monotonic() + timeout
    dtype = problem.dtype_name(size)   # "": inputs as get_inputs draws them, the model as constructed
    model_seed, key = secrets_ or new_secrets()
    cfg = child_config("reference", problem, device, size, dtype, model_seed, key, threads)
    child = Child(cfg, sandboxed=False, deadline=deadline, threads=threads)
    # The checks run in a second reference process: the timed one then does exactly what the candidate
    # does between batches (nothing), so extra work cannot cost it scheduler share on a contended machine.
    checker = Child({**cfg, "checker": True}, sandboxed=False, deadline=deadline, threads=threads)
    try:
        ready = expect(child.recv(), "ready", child, "reference")
        expect(checker.recv(), "ready", checker, "reference checker")
        ref = Reference(problem=problem, device=device, size=size, dtype=dtype, model_seed=model_seed, digest_key=key,
                        threads=threads, trials=trials, child=child, checker=checker, hardware=ready.get("hardware", {}),
                        versions=ready.get("versions", {}), digest_method=ready["digest"])
        # Every distribution once, untimed: the reference must stay finite on each, and give the same output
        # again for the same inputs (another global random stream, a later call), or no candidate can match it.
        calls = [[secrets.randbits(31), d] for d in problem.distributions]
        got = expect(child.request({"cmd": "batch", "calls": calls, "finite": True, "repeat": True}), "batch", child,
                     "reference")
        used = []
        for meta, (_, dist) in zip(got["calls"], calls, strict=True):
            if not meta["finite"]:
                if problem.declares_distributions or dist == problem.distributions[0]:
                    raise ProblemError(f"{problem.name}: the reference gives NaN/Inf on {dist!r} inputs; "
                                       "leave that distribution out of INPUT_DISTRIBUTIONS")
                # a default the problem never asked for (KernelBench files declare none): x * 100 overflows an exp
                ref.left_out[dist] = "the reference gives NaN/Inf on these inputs"
                continue
            if meta.get("repeat"):
                raise ProblemError(f"{problem.name}: the reference gives another output for the same {dist!r} inputs "
                                   f"({meta['repeat']}): random numbers in forward (dropout in training mode, "
                                   "torch.rand) or state that changes between calls; no candidate can be checked "
                                   "against it")
            used.append(dist)
        ref.used_distributions = tuple(used)
        ref.input_dtype = next(iter(got["calls"][0].get("in_dtypes", [])), "")
        first = got["calls"][0]
        ref.in_bytes, ref.out_bytes = first["in_bytes"], nbytes(first["shapes"], first["dtypes"])
        per_call = max(1, ref.in_bytes + ref.out_bytes)
        budget = DEVICE_BATCH_SHARE * ready.get("free_bytes", 0) if device == "cuda" else HOST_BATCH_BYTES
        cap = int(max(1, min(MAX_CALLS, budget // per_call)))
        target = batch_target_s or BATCH_TARGET_S[device]
        n = 1
        for _ in range(5):   # grow until a batch takes the target time (the first one also warms up)
            took = math.inf
            for _ in range(2 if device == "cpu" else 1):   # CPU: the faster of two (a preemption must not leave the batches too short)
                calls = [[secrets.randbits(31), "normal"] for _ in range(n)]
                t0 = time.perf_counter()
                expect(child.request({"cmd": "batch", "calls": calls}), "batch", child, "reference")
                took = min(took, time.perf_counter() - t0)
            ref.calibration.append({"calls": n, "seconds": round(took, 6)})
            if took >= target or n >= cap:
                break
            n = min(cap, max(n + 1, math.ceil(n * 1.2 * target / max(took, 1e-6))))
        ref.calls_per_batch = n
        anchor = expect(child.request({"cmd": "anchor", "call": [PROBE_SEED, "normal"]}), "batch", child, "reference")
        meta = anchor["calls"][0]
        ref.anchor = {"seed": PROBE_SEED, "distribution": "normal", "digest": ref.digest_method,
                      "digests": meta["digests"], "shapes": meta["shapes"], "dtypes": meta["dtypes"]}
        return ref
    except ChildTimeout as exc:
        _finish(child, checker)
        raise ProblemError("the reference did not finish within --timeout: raise it") from exc
    except ForgedMessage as exc:
        _finish(child, checker)
        raise ProblemError(f"the reference child's replies are unreadable: {exc}") from exc
    except BaseException:
        _finish(child, checker)
        raise


def _finish(*children: Child) -> None:
    for c in children:
        c.finish(grace_s=0)
