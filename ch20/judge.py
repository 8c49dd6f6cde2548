"""Judging one candidate against a live reference: interleaved, parent-timed rounds with checked outputs.

Each round the parent draws fresh seeds for N calls (every call its own input contents), and times, with
its own clock around request and reply, one batch of those calls in the reference child and one in the
candidate child, in a random order. The candidate is frozen (SIGSTOP, with everything it started) except
while it runs its own batch or exports, so it cannot load the machine while the reference is timed. After
its batch, the parent picks calls at random and has their outputs exported (into a memfd it then seals)
and checked in the reference child against the digests committed when the batch ended and against the
reference's own output. The first rounds cover every declared distribution and check whole outputs.
"""
from __future__ import annotations

import fcntl
import os
import random
import secrets
import time

from ch20._process import Child, ForgedMessage
from ch20.checking import describe
from ch20.pairing import paired_speedup
from ch20.session import Reference, child_config, nbytes

FULL_CHECK_BYTES = 256 << 20   # outputs up to this size are checked whole; larger ones by sampled chunks
SAMPLED_CHUNKS = 16
CHECKS_PER_BATCH = 4
SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


class Rejected(Exception):
    """The candidate is rejected; the message is the reason. `tampered` marks an attack on the verifier."""

    def __init__(self, reason: str, *, tampered: bool = False, correct: bool | None = None, stage: str = ""):
        super().__init__(reason)
        self.tampered, self.correct, self.stage = tampered, correct, stage


def _reply(child: Child, who: str, event: str, stage: str) -> dict:
    msg = child.recv()
    if msg is None:
        tail = child.log_tail()[-1500:]
        raise Rejected(f"the {who} process {child.exit_description()} during {stage}", stage=stage + "\n" + tail)
    if msg["event"] in ("compile_error", "runtime_error"):
        raise Rejected(f"{'does not compile' if msg['event'] == 'compile_error' else 'raised'} during {stage}: "
                       f"{msg.get('summary')}", stage=stage + "\n" + str(msg.get("error", "")),
                       correct=None if msg["event"] == "runtime_error" else False)
    if msg["event"] != event:
        raise ForgedMessage(f"the {who} answered {msg['event']!r} where {event!r} was due")
    return msg


def _calls_meta(msg: dict, n: int) -> list[dict]:
    calls = msg.get("calls")
    if not isinstance(calls, list) or len(calls) != n:
        raise ForgedMessage(f"a batch reply with {len(calls) if isinstance(calls, list) else 'no'} results for {n} calls")
    for c in calls:
        if not isinstance(c, dict) or not {"structure", "shapes", "dtypes", "digests"} <= set(c):
            raise ForgedMessage("a batch reply without the structure, shapes, dtypes and digests of every call")
    return calls


class Judge:
    def __init__(self, reference: Reference, candidate_source: str, candidate_name: str, verdict: dict,
                 deadline: float, rounds: int):
        self.ref, self.verdict, self.deadline = reference, verdict, deadline
        self.rounds = max(rounds, reference.trials, len(reference.distributions)) + 1   # +1: the warm-up round
        self.rng = random.Random(secrets.randbits(64))
        cfg = child_config("candidate", reference.problem, reference.device, reference.size, reference.dtype,
                           reference.model_seed, reference.digest_key, reference.threads,
                           candidate_source=candidate_source, candidate_file=f"<candidate {candidate_name}>")
        reference.child.deadline = deadline
        self.cand = Child(cfg, sandboxed=True, deadline=deadline, threads=reference.threads)
        self.checked: list[dict] = []
        self.times = {"reference": [], "candidate": []}
        self.cpu = {"seconds": 0.0, "wall": 0.0}
        self.quiet_failures = 0

    def start(self) -> dict:
        ready = _reply(self.cand, "candidate", "ready", "import")
        self.cand.freeze()
        return ready

    def _time_reference(self, calls) -> tuple[float, list]:
        t0 = time.perf_counter()
        self.ref.child.send({"cmd": "batch", "calls": calls, "probe": self.ref.device == "cuda"})
        msg = _reply(self.ref.child, "reference", "batch", "the reference's batch")
        took = time.perf_counter() - t0
        if msg.get("quiet") and not msg["quiet"].get("quiet", True):
            self.quiet_failures += 1
        return took, _calls_meta(msg, len(calls))

    def _time_candidate(self, calls) -> tuple[float, list]:
        self.cand.thaw()
        cpu0 = self.cand.cpu_seconds()
        t0 = time.perf_counter()
        self.cand.send({"cmd": "batch", "calls": calls})
        msg = _reply(self.cand, "candidate", "batch", "its timed batch")
        took = time.perf_counter() - t0
        self.cand.freeze()
        self.cpu["seconds"] += self.cand.cpu_seconds() - cpu0
        self.cpu["wall"] += took
        return took, _calls_meta(msg, len(calls))

    def _chunks(self, meta: dict, full: bool) -> list[list[int]]:
        per_tensor = [len(d) for d in meta["digests"]]
        every = [[ti, ci] for ti, n in enumerate(per_tensor) for ci in range(n)]
        if full or len(every) <= SAMPLED_CHUNKS:
            return every
        picked = self.rng.sample(every[:-1], SAMPLED_CHUNKS - 1) + [every[-1]]   # the ragged last chunk always
        return sorted(picked)

    def _check(self, call, meta: dict, ref_meta: dict, j: int, full: bool) -> None:
        seed, dist = call
        if (meta["structure"], meta["shapes"], meta["dtypes"]) != (ref_meta["structure"], ref_meta["shapes"],
                                                                  ref_meta["dtypes"]):
            if meta["structure"] != ref_meta["structure"]:
                why = f"returned {describe(meta['structure'])}, the reference {describe(ref_meta['structure'])}"
            elif meta["shapes"] != ref_meta["shapes"]:
                why = f"shape {[tuple(s) for s in meta['shapes']]} != reference {[tuple(s) for s in ref_meta['shapes']]}"
            else:
                why = f"dtype {meta['dtypes']} != reference {ref_meta['dtypes']}"
            self._fail(dist, why)
        if [len(d) for d in meta["digests"]] != [len(d) for d in ref_meta["digests"]]:
            raise ForgedMessage("a commitment with the wrong number of chunk digests")
        chunks = self._chunks(meta, full)
        sizes = [nbytes([s], [d]) for s, d in zip(meta["shapes"], meta["dtypes"], strict=True)]
        total = sum(min(4 << 20, sizes[ti] - ci * (4 << 20)) for ti, ci in chunks)
        fd = os.memfd_create("ch20-export", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, total)
            self.cand.thaw()
            self.cand.send({"cmd": "export", "call": j, "chunks": chunks}, (fd,))
            exported = _reply(self.cand, "candidate", "exported", "the export of a timed call's output")
            self.cand.freeze()
            try:
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)   # from here on nobody can change these bytes
            except OSError as exc:
                raise Rejected("it kept the exported output writable after replying (a mapping or a writer "
                               f"left open: {exc.strerror})", tampered=True) from exc
            committed = {"structure": meta["structure"], "shapes": meta["shapes"], "dtypes": meta["dtypes"],
                         "digests": meta["digests"], "input_digests": exported.get("input_digests")}
            self.ref.child.send({"cmd": "check", "seed": seed, "dist": dist, "committed": committed, "chunks": chunks},
                                (fd,))
            result = _reply(self.ref.child, "reference", "checked", "checking an output")
        finally:
            os.close(fd)
        if not result.get("reference_finite", True):
            from ch20.problem import ProblemError
            raise ProblemError(f"the reference gives NaN/Inf on {dist!r} inputs")
        row = {"distribution": dist, "ok": bool(result["ok"]), "whole": full or len(chunks) == sum(map(len, meta["digests"])),
               "max_abs_err": float(result["max_abs_err"]), "rel_l2_err": float(result["rel_l2_err"]),
               "reason": result["reason"]}
        self.checked.append(row)
        if not row["ok"]:
            self._fail(dist, result["reason"], tampered="digest it committed" in result["reason"])

    def _fail(self, dist: str, why: str, tampered: bool = False) -> None:
        self.verdict["trials"] = self.checked
        n = len(self.checked)
        raise Rejected(f"wrong in checked call {n} ({dist} inputs): {why}", tampered=tampered, correct=False,
                       stage="compare")

    def run(self) -> dict:
        dists = list(self.ref.distributions)
        n = self.ref.calls_per_batch
        whole_rounds = max(self.ref.trials, len(dists)) + 1
        for r in range(self.rounds):
            if r < whole_rounds:   # warm-up, then one distribution per round, every checked output whole
                calls = [[secrets.randbits(31), dists[(r - 1) % len(dists)]] for _ in range(n)]
            else:
                calls = [[secrets.randbits(31), dists[(r + i) % len(dists)]] for i in range(n)]
            if self.rng.random() < 0.5:
                t_ref, ref_meta = self._time_reference(calls)
                t_cand, cand_meta = self._time_candidate(calls)
            else:
                t_cand, cand_meta = self._time_candidate(calls)
                t_ref, ref_meta = self._time_reference(calls)
            if r:
                self.times["reference"].append(t_ref)
                self.times["candidate"].append(t_cand)
            big = self.ref.out_bytes > FULL_CHECK_BYTES
            k = 1 if big else min(n, CHECKS_PER_BATCH)
            for j in sorted(self.rng.sample(range(n), k)):
                self._check(calls[j], cand_meta[j], ref_meta[j], j, full=(0 < r < whole_rounds) or not big)
        return paired_speedup(self.times["reference"], self.times["candidate"], n)

    def close(self) -> None:
        self.cand.finish(grace_s=2)
