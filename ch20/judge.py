"""Judging one candidate against a live reference: interleaved, parent-timed rounds with checked outputs.

Each round the parent draws fresh seeds for N calls (every call its own input contents), and times, with
its own clock around request and reply, batches of those calls in the reference child and in the
candidate child, in the order RCCR or CRRC (at random). The candidate is frozen (SIGSTOP, with everything it started) except
while it runs its own batch or exports, so it cannot load the machine while the reference is timed. After
its batch the parent has outputs exported (into a memfd it then seals) and checked in the reference child
against the digests committed when the batch ended and against the reference's own output: every call of
both batches, whole, while a round's outputs total at most FULL_CHECK_BYTES; above that one call per round,
chosen at random after the batches, by SAMPLED_CHUNKS random chunks, and whole in the first rounds (one per
declared distribution; one in all for outputs over HOST_WHOLE_BYTES).
"""
from __future__ import annotations

import fcntl
import os
import random
import secrets
import threading
import time

from ch20._process import Child, ForgedMessage, host_memory_cap
from ch20.checking import describe
from ch20.pairing import paired_speedup
from ch20.session import BATCH_TARGET_S, Reference, child_config, nbytes

FULL_CHECK_BYTES = 256 << 20   # rounds whose outputs total up to this are checked whole; others by sampled chunks
HOST_WHOLE_BYTES = 1 << 30     # a call's outputs above this are compared whole once (they pass through host memory)
SAMPLED_CHUNKS = 16
SAMPLED_CALLS = 4              # calls checked a round when checking each would cost more than timing it
TIMING_BUDGET_S = {"cpu": 8.0, "cuda": 8.0}   # timed batches beyond the minimum rounds stop after this much
# Verifications running in one verifier process (threads of a search loop, say) take turns by round: while one
# times and checks a round, every other one's children are idle, so no verification's batches are timed
# against another's work. Starting children and compiling still overlap. Turns are first come, first served: a
# plain Lock lets the thread that just released it take it again at once, so one verification's rounds could
# starve another's past its timeout.


class _Turns:
    """A FIFO lock: whoever asked first goes next."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next_ticket = self._serving = 0
        self._abandoned: set[int] = set()   # tickets whose holder gave up waiting (Ctrl-C): skipped

    def __enter__(self):
        with self._cond:
            ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
            try:
                self._cond.wait_for(lambda: self._serving == ticket)
            except BaseException:
                self._abandoned.add(ticket)
                self._advance(0)
                raise

    def __exit__(self, *exc):
        with self._cond:
            self._advance(1)

    def _advance(self, done: int) -> None:
        self._serving += done
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._cond.notify_all()


ROUND_LOCK = _Turns()
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


def start_candidate(problem, device: str, size: str, dtype: str, model_seed: int, key: tuple[int, int], threads: int,
                    source: str, name: str, deadline: float) -> Child:
    """The sandboxed candidate child (it may start while the reference child is still calibrating)."""
    cfg = child_config("candidate", problem, device, size, dtype, model_seed, key, threads,
                       candidate_source=source, candidate_file=f"<candidate {name}>")
    return Child(cfg, sandboxed=True, deadline=deadline, threads=threads, memory_cap=host_memory_cap())


class Judge:
    def __init__(self, reference: Reference, candidate_source: str, candidate_name: str, verdict: dict,
                 deadline: float, rounds: int, child: Child | None = None):
        self.ref, self.verdict, self.deadline = reference, verdict, deadline
        self.rounds = rounds + 1   # +1: the warm-up round
        self.rng = random.Random(secrets.randbits(64))
        reference.child.deadline = deadline
        reference.checker.deadline = deadline
        self.cand = child or start_candidate(reference.problem, reference.device, reference.size, reference.dtype,
                                             reference.model_seed, reference.digest_key, reference.threads,
                                             candidate_source, candidate_name, deadline)
        self.cand.deadline = deadline
        self.checked: list[dict] = []
        self.batch_s: list[dict] = []   # per timed round: every batch and the calls in each, {"R": [..], "C": [..], "n": n}
        self.cpu = {"seconds": 0.0, "wall": 0.0}
        self.quiet_failures = 0
        # where the verification's wall time went (seconds): a slow verification says which part was slow
        self.phases = verdict.setdefault("phases", {})
        for k in ("candidate_ready_s", "quiet_s", "timed_batches_s", "export_and_check_s"):
            self.phases.setdefault(k, 0.0)

    def _spent(self, phase: str, since: float) -> None:
        self.phases[phase] = round(self.phases[phase] + time.perf_counter() - since, 4)

    def start(self) -> dict:
        t0 = time.perf_counter()
        ready = _reply(self.cand, "candidate", "ready", "import")
        self._spent("candidate_ready_s", t0)
        self.cand.freeze()
        return ready

    def _time_reference(self, calls, batch_id: int) -> tuple[float, list]:
        if self.ref.device == "cuda":   # untimed: is work the frozen candidate left queued still running?
            t0 = time.perf_counter()
            self.ref.child.send({"cmd": "quiet"})
            if not _reply(self.ref.child, "reference", "quiet", "the device quiet check").get("quiet", True):
                self.quiet_failures += 1
            self._spent("quiet_s", t0)
        t0 = time.perf_counter()
        self.ref.child.send({"cmd": "batch", "calls": calls, "id": batch_id})
        msg = _reply(self.ref.child, "reference", "batch", "the reference's batch")
        took = time.perf_counter() - t0
        self._spent("timed_batches_s", t0)
        return took, _calls_meta(msg, len(calls))

    def _time_candidate(self, calls, batch_id: int) -> tuple[float, list]:
        self.cand.thaw()
        cpu0 = self.cand.cpu_seconds()
        t0 = time.perf_counter()
        self.cand.send({"cmd": "batch", "calls": calls, "id": batch_id})
        msg = _reply(self.cand, "candidate", "batch", "its timed batch")
        took = time.perf_counter() - t0
        self._spent("timed_batches_s", t0)
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

    def _precheck(self, dist: str, meta: dict, ref_meta: dict) -> None:
        """Structure, shapes, dtypes and chunk counts against the reference's, before anything is exported."""
        if meta["structure"] != ref_meta["structure"]:
            self._fail(dist, f"returned {describe(meta['structure'])}, the reference {describe(ref_meta['structure'])}")
        if meta["shapes"] != ref_meta["shapes"]:
            self._fail(dist, f"shape {[tuple(s) for s in meta['shapes']]} != reference "
                             f"{[tuple(s) for s in ref_meta['shapes']]}")
        if meta["dtypes"] != ref_meta["dtypes"]:
            self._fail(dist, f"dtype {meta['dtypes']} != reference {ref_meta['dtypes']}")
        if [len(d) for d in meta["digests"]] != [len(d) for d in ref_meta["digests"]]:
            raise ForgedMessage("a commitment with the wrong number of chunk digests")

    def _check(self, batches: list, picked: list[tuple[int, int]], full: bool) -> None:
        """Export the picked (batch, call) outputs into one memfd, seal it, and have the reference check them.
        batches: [(batch id, calls, candidate metas, reference metas)]."""
        t0 = time.perf_counter()
        try:
            self._export_and_check(batches, picked, full)
        finally:
            self._spent("export_and_check_s", t0)

    def _export_and_check(self, batches: list, picked: list[tuple[int, int]], full: bool) -> None:
        items = []
        for bi, j in picked:
            _, calls, metas, ref_metas = batches[bi]
            self._precheck(calls[j][1], metas[j], ref_metas[j])
            items.append((bi, j, self._chunks(metas[j], full)))
        total = 0
        for bi, j, chunks in items:
            metas = batches[bi][2]
            sizes = [nbytes([s], [d]) for s, d in zip(metas[j]["shapes"], metas[j]["dtypes"], strict=True)]
            total += sum(min(4 << 20, sizes[ti] - ci * (4 << 20)) for ti, ci in chunks)
        fd = os.memfd_create("ch20-export", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, total)
            self.cand.thaw()
            self.cand.send({"cmd": "export", "items": [[batches[bi][0], j, chunks] for bi, j, chunks in items]}, (fd,))
            exported = _reply(self.cand, "candidate", "exported", "the export of timed calls' outputs")
            self.cand.freeze()
            try:
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)   # from here on nobody can change these bytes
            except OSError as exc:
                raise Rejected("it kept the exported outputs writable after replying (a mapping or a writer "
                               f"left open: {exc.strerror})", tampered=True) from exc
            inputs = exported.get("input_digests")
            if not isinstance(inputs, list) or len(inputs) != len(items):
                raise ForgedMessage("an export reply without the input digests of every call")
            check = [{"seed": batches[bi][1][j][0], "dist": batches[bi][1][j][1], "chunks": chunks,
                      "committed": {**{k: batches[bi][2][j][k] for k in ("structure", "shapes", "dtypes", "digests")},
                                    "input_digests": inputs[i]}} for i, (bi, j, chunks) in enumerate(items)]
            self.ref.checker.send({"cmd": "check", "items": check}, (fd,))
            results = _reply(self.ref.checker, "reference checker", "checked", "checking outputs")["results"]
        finally:
            os.close(fd)
        for (bi, j, chunks), result in zip(items, results, strict=False):
            dist, metas = batches[bi][1][j][1], batches[bi][2]
            if not result.get("reference_finite", True):
                from ch20.problem import ProblemError
                raise ProblemError(f"the reference gives NaN/Inf on {dist!r} inputs")
            row = {"distribution": dist, "ok": bool(result["ok"]),
                   "whole": len(chunks) == sum(map(len, metas[j]["digests"])),
                   "max_abs_err": float(result["max_abs_err"]), "rel_l2_err": float(result["rel_l2_err"]),
                   "reason": result["reason"]}
            self.checked.append(row)
            if not row["ok"]:
                self._fail(dist, result["reason"], tampered="digest it committed" in result["reason"])
        if len(results) != len(items):
            raise ForgedMessage("the reference checked fewer calls than were exported")

    def _fail(self, dist: str, why: str, tampered: bool = False) -> None:
        self.verdict["trials"] = self.checked
        n = len(self.checked)
        raise Rejected(f"wrong in checked call {n} ({dist} inputs): {why}", tampered=tampered, correct=False,
                       stage="compare")

    def run(self) -> dict:
        dists = list(self.ref.distributions)
        n_full = self.ref.calls_per_batch
        big = 2 * n_full * self.ref.out_bytes > FULL_CHECK_BYTES   # what checking every call of a round would move
        # Checking a call draws its inputs again and runs the reference on them: with large inputs and a small
        # output (a loss over a big batch: 0.5 GB in, a scalar out) checking every call costs far more than timing
        # it, so a few calls a round are checked, unseen distributions first
        costly = not big and 2 * n_full * self.ref.in_bytes > FULL_CHECK_BYTES
        # The warm-up round has a sixteenth of the calls: a candidate thousands of times slower than the reference
        # (an interpreter, a GIL-bound thread) then costs seconds there, not minutes, before its batches shrink
        n = max(1, n_full // 16)
        # Small outputs: the calls cycle through the distributions and every one is checked whole.
        # Large ones: one distribution per round for the first rounds, whose checked call is compared whole.
        whole_rounds = max(self.ref.trials, len(dists)) + 1 if big else 0
        if self.ref.out_bytes > HOST_WHOLE_BYTES:
            # Gigabytes per whole check (export, host copy, check): one, for the first distribution; every other
            # distribution is still drawn and checked, by sampled chunks
            whole_rounds = min(whole_rounds, 2)
        seen: set[str] = set()
        rounds = max(self.rounds, whole_rounds, 4)
        spent = 0.0
        for r in range(rounds):
            with ROUND_LOCK:   # see ROUND_LOCK
                def draw(k):
                    if r < whole_rounds:
                        return [[secrets.randbits(31), dists[(r - 1) % len(dists)]] for _ in range(n)]
                    return [[secrets.randbits(31), dists[(2 * r * n + k * n + i) % len(dists)]] for i in range(n)]

                # ABBA, each batch with new seeds: whichever side runs second finds shared library code warm;
                # running both orders in every round cancels that (first-order) effect instead of leaving it to chance.
                first, calls = draw(0), draw(1)
                plan = (("R", first), ("C", first), ("C", calls), ("R", calls))
                if self.rng.random() < 0.5:
                    plan = tuple((("C" if side == "R" else "R"), c) for side, c in plan)
                t_ref = t_cand = 0.0
                metas, each = {}, {"R": [], "C": []}
                for k, (side, batch_calls) in enumerate(plan):
                    batch_id = 2 * r + (k in (2, 3))
                    if side == "R":
                        took, metas[("R", batch_id)] = self._time_reference(batch_calls, batch_id)
                        t_ref += took
                        each["R"].append(took)
                    else:
                        took, metas[("C", batch_id)] = self._time_candidate(batch_calls, batch_id)
                        t_cand += took
                        each["C"].append(took)
                if r:
                    self.batch_s.append({**each, "n": n})
                n = self._next_batch_size(each, n, n_full, warm_up=r == 0)
                spent += t_ref + t_cand
                batches = [(2 * r, first, metas[("C", 2 * r)], metas[("R", 2 * r)]),
                           (2 * r + 1, calls, metas[("C", 2 * r + 1)], metas[("R", 2 * r + 1)])]
                every = [(bi, j) for bi in range(2) for j in range(len(batches[bi][1]))]
                unseen = [(bi, j) for bi, j in every if batches[bi][1][j][1] not in seen]
                if big:
                    picked = self.rng.sample(unseen or every, 1)
                elif costly:
                    rest = [c for c in every if c not in unseen]
                    picked = (self.rng.sample(unseen, min(len(unseen), SAMPLED_CALLS))
                              + self.rng.sample(rest, max(0, min(len(rest), SAMPLED_CALLS - len(unseen)))))
                else:
                    picked = every   # small: every call of both batches, whole
                seen.update(batches[bi][1][j][1] for bi, j in picked)
                self._check(batches, picked, full=(0 < r < whole_rounds) or not big)
                if r + 1 >= max(whole_rounds, 3) and spent > TIMING_BUDGET_S[self.ref.device]:
                    break   # a slow candidate (an interpreter) gets fewer rounds, and a wider interval says so
        return paired_speedup(self.times["reference"], self.times["candidate"], [b["n"] for b in self.batch_s])

    def _next_batch_size(self, each: dict, n: int, n_full: int, warm_up: bool) -> int:
        """Calls per batch for the next round. A candidate much slower than the reference gets shorter batches
        (both sides), re-judged after every round: one that was fast in the warm-up and slow later (a thread
        that competes for the GIL on a loaded machine) must not stretch a round to minutes."""
        per_call = min(each["C"]) / n   # the faster of its two batches
        target = BATCH_TARGET_S[self.ref.device]
        planned = n_full if warm_up else n
        if min(each["C"]) > 4 * max(each["R"]) and per_call * planned > 4 * target:
            planned = max(1, min(planned, int(2 * target / per_call)))
        return planned

    @property
    def times(self) -> dict[str, list[float]]:
        """Per timed round, each side's faster batch: on a shared machine a batch can only be slowed (a
        preemption, another process's burst), so the minimum of two is the least disturbed figure; both sides
        get one batch in each position, so neither gains from the order."""
        return {"reference": [min(b["R"]) for b in self.batch_s], "candidate": [min(b["C"]) for b in self.batch_s]}

    def close(self) -> None:
        self.cand.finish(grace_s=2)
