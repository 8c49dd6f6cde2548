"""A verifier child: the reference child runs only the problem; the candidate child is the only process
that ever imports a candidate. Nothing either says is believed unless it can be checked.

The parent sends one JSON line of configuration (sources as text: no file is read on a path the candidate
could have replaced), then commands, on a Unix socket whose descriptor number is in CH20_CHANNEL_FD:

    batch   [[seed, distribution], ...]: draw each call's inputs on the device from its seed, call the model,
            digest every output chunk (ch20.digest), synchronize, reply with the digests. The parent's clock
            around this request and its reply is the timing; the digests commit the outputs before it stops.
    export  [[call, chunks], ...] and a memfd: write those output chunks into it, one after another, and
            reply with the digests of each call's inputs after the call (in-place modification shows there).
    check   (reference child only) calls, what the candidate committed for each and a sealed memfd with
            its bytes: recompute the digests of the bytes and compare them, and their values, with this
            child's own output for the same inputs.
    stop

Replies are repr() lines (parsed with ast.literal_eval, never unpickled) with a nonce; the parent treats
any malformed reply as a rejection, and the nonce is only hygiene: code in this process can read it.
"""
from __future__ import annotations

import faulthandler
import json
import linecache
import mmap
import os
import socket
import sys
import time
import traceback
import types

# Exports can be gigabytes: the pages of the memfd are mapped in one go, not one fault per 4 KiB page
MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)

_repr = repr  # a builtin's C code: replacing json or pickle internals does not change what is sent


def _summary(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300] if str(exc) else type(exc).__name__
    return text


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _is_compile_error(exc: BaseException) -> bool:
    """Triton compiles at the first call: its errors mean "does not compile", not "runs but wrong"."""
    return bool({c.__name__ for c in type(exc).__mro__} & {"CompilationError", "CompileTimeAssertionFailure",
                                                            "OutOfResources"})


class Channel:
    def __init__(self, fd: int):
        self.sock = socket.socket(fileno=fd)
        self.buf = b""
        self.nonce = ""

    def send(self, event: str, **fields) -> None:
        self.sock.sendall((_repr({"nonce": self.nonce, "event": event, **fields}) + "\n").encode())

    def command(self) -> tuple[dict, list[int]]:
        fds: list[int] = []
        while b"\n" not in self.buf:
            data, got, _, _ = socket.recv_fds(self.sock, 1 << 16, 4)
            if not data:
                return {"cmd": "stop"}, fds
            self.buf += data
            fds += got
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line), fds


def load_source(source: str, filename: str, name: str) -> types.ModuleType:
    """A module from source text (tracebacks still show its lines)."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - this is the child's whole purpose
    return module


class Runner:
    def __init__(self, torch, cfg, problem, model, chan):
        from ch20 import digest
        from ch20.problem import draw_inputs
        self.torch, self.cfg, self.problem, self.model, self.chan = torch, cfg, problem, model, chan
        self.digest, self.draw = digest, draw_inputs
        self.device = torch.device(cfg["device"])
        self.dtype = getattr(torch, cfg["dtype"]) if cfg["dtype"] else None   # None: as get_inputs draws them
        self.key = tuple(cfg["digest_key"])
        self.method = digest.pick_method(self.device)
        tol = getattr(problem, "TOLERANCE", None)
        self.problem_tolerance = tuple(tol) if tol else None
        self.batches: dict = {}   # batch id -> [(inputs, output tensors)]: the last two batches, for export
        self.probe_buf = None
        self.probe_min = None

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def inputs(self, seed, dist):
        return self.draw(self.problem.get_inputs, self.cfg["size"], self.dtype, seed, dist, self.device)

    def flatten(self, out):
        """(structure, tensors), exact types only: a subclass could compute lazily when read. A tuple subclass
        (torch.max's torch.return_types.max, a namedtuple) counts as a tuple: its items are read with tuple's
        own methods, which no subclass can override, so it is the same as a plain tuple of the same tensors."""
        t = self.torch
        if type(out) is t.Tensor:
            return "tensor", [out.detach()]
        if isinstance(out, t.Tensor):
            raise TypeError(f"returned a tensor subclass ({type(out).__name__}); return a plain torch.Tensor")
        if isinstance(out, (tuple, list)):
            base = tuple if isinstance(out, tuple) else list
            parts = [self.flatten(base.__getitem__(out, i)) for i in range(base.__len__(out))]
            return [base.__name__, [p[0] for p in parts]], [x for p in parts for x in p[1]]
        if type(out) is dict:
            keys = sorted(out)
            parts = [self.flatten(out[k]) for k in keys]
            return ["dict", keys, [p[0] for p in parts]], [x for p in parts for x in p[1]]
        raise TypeError(f"returned {type(out).__name__}; expected a tensor (or the reference's tuple/dict of them)")

    def describe(self, tensors) -> dict:
        return {"shapes": [list(x.shape) for x in tensors], "dtypes": [str(x.dtype).replace("torch.", "") for x in tensors]}

    def input_digests(self, xs) -> list:
        return [self.digest.digests(x, self.key, self.method) if isinstance(x, self.torch.Tensor) else _repr(x)
                for x in xs]

    def quiet(self) -> dict:
        """CUDA: wait (a little) until a small probe runs at its usual speed, so work another process left
        queued on the device is not inside this child's timed batch; report whether it got there."""
        if self.device.type != "cuda":
            return {}
        t = self.torch
        if self.probe_buf is None:
            self.probe_buf = t.ones(8 << 20, device=self.device)
        started, times = time.perf_counter(), []
        while True:
            t0 = time.perf_counter()
            self.probe_buf.sum()
            self.sync()
            times.append(time.perf_counter() - t0)
            if self.probe_min is None and len(times) >= 10:
                self.probe_min = min(times)
            if self.probe_min is not None and times[-1] <= 1.5 * self.probe_min + 20e-6:
                return {"quiet": True, "waited_s": time.perf_counter() - started}
            if time.perf_counter() - started > 0.5:
                return {"quiet": False, "waited_s": time.perf_counter() - started, "probe_s": times[-1],
                        "probe_min_s": self.probe_min}

    def differs(self, first, second) -> str:
        """Why two outputs for the same inputs differ beyond the tolerance ("" when they agree)."""
        from harness import verify as hv
        (s1, t1), (s2, t2) = first, second
        if s1 != s2:
            return "another structure"
        cmp = hv.compare(t2, t1, self.problem_tolerance)
        return "" if cmp.ok else cmp.reason

    def batch(self, calls, probe: bool = False, finite: bool = False, batch_id: int = 0, repeat: bool = False):
        quiet = self.quiet() if probe else {}
        for old in [k for k in self.batches if k < batch_id - 1 or k == batch_id]:
            del self.batches[old]
        self.held = self.batches[batch_id] = []
        metas = []
        with self.torch.no_grad():
            for i, (seed, dist) in enumerate(calls):
                stage = "get_inputs"
                try:
                    xs = self.inputs(seed, dist)
                    stage = "forward"
                    structure, tensors = self.flatten(self.model(*xs))
                    meta = {"structure": structure, **self.describe(tensors),
                            "in_bytes": sum(x.numel() * x.element_size() for x in xs if isinstance(x, self.torch.Tensor)),
                            "in_dtypes": [str(x.dtype).replace("torch.", "") for x in xs
                                          if isinstance(x, self.torch.Tensor) and x.is_floating_point()],
                            "digests": [self.digest.digests(x, self.key, self.method) for x in tensors]}
                    if finite:   # asked only outside timed batches: is the reference finite on this distribution?
                        meta["finite"] = all(bool(self.torch.isfinite(x).all()) for x in tensors if x.is_floating_point())
                    if repeat:   # untimed: the same inputs again, another global random stream, a later call
                        again = self.inputs(seed, dist)
                        self.torch.manual_seed(seed ^ 0x7E57ED)
                        meta["repeat"] = self.differs((structure, tensors), self.flatten(self.model(*again)))
                        del again
                except BaseException as exc:  # noqa: B036 - a candidate's SystemExit is its failure too
                    kind = "compile_error" if _is_compile_error(exc) else "runtime_error"
                    self.chan.send(kind, stage=stage, call=i, error=_tail(traceback.format_exc()), summary=_summary(exc))
                    return
                self.held.append((xs, tensors))
                metas.append(meta)
        self.sync()   # device-wide: work left on side streams ends inside the parent's timed request
        self.chan.send("batch", calls=metas, quiet=quiet)

    def export(self, items, fd: int):
        """items: [[batch, call, chunks], ...]: those chunks of those outputs, one after another, into fd."""
        from ch20.checking import chunk_runs
        size = os.fstat(fd).st_size
        mm = mmap.mmap(fd, size, flags=MAP_FLAGS) if size else None
        pos, inputs = 0, []
        cb = self.digest.CHUNK_BYTES
        for b, j, chunks in items:
            xs, tensors = self.batches[b][j]
            for ti, c0, count in chunk_runs(chunks):   # runs of consecutive chunks: one copy each, in the same order
                raw = self.digest.tensor_bytes(tensors[ti])[c0 * cb:(c0 + count) * cb]
                n = raw.numel()
                if n:
                    dst = self.torch.frombuffer(mm, dtype=self.torch.uint8, count=n, offset=pos)
                    dst.copy_(raw)
                    del dst
                pos += n
            inputs.append(self.input_digests(xs))
        if mm is not None:
            mm.close()
        os.close(fd)
        self.chan.send("exported", nbytes=pos, input_digests=inputs)

    def check(self, items, fd: int):
        """items: [{seed, dist, committed, chunks}, ...] in the order their bytes lie in fd."""
        from ch20.checking import check_exported
        size = os.fstat(fd).st_size
        mm = mmap.mmap(fd, size, flags=MAP_FLAGS, prot=mmap.PROT_READ) if size else None
        results, pos = [], 0
        try:
            for item in items:
                with self.torch.no_grad():
                    xs = self.inputs(item["seed"], item["dist"])
                    drawn = self.input_digests(xs)
                    structure, tensors = self.flatten(self.model(*xs))
                    after = self.input_digests(xs)   # a reference that modifies its inputs in place (x.relu_())
                result, pos = check_exported(self, (drawn, after), structure, tensors, item["committed"], item["chunks"],
                                             mm, pos)
                results.append(result)
                del xs, tensors
                if not result["ok"]:
                    break
        finally:
            if mm is not None:
                mm.close()
        self.chan.send("checked", results=results, consumed=pos, size=size)


def main() -> None:
    faulthandler.enable()   # a segfaulting kernel leaves a Python traceback in the log
    chan = Channel(int(os.environ["CH20_CHANNEL_FD"]))
    cfg, _ = chan.command()
    chan.nonce = cfg.pop("nonce")
    os.environ.pop("CH20_CHANNEL_FD", None)
    import torch
    torch.set_num_threads(cfg["threads"])
    from ch20.problem import call_sized

    device = torch.device(cfg["device"])
    dtype = getattr(torch, cfg["dtype"]) if cfg["dtype"] else None

    def build(cls):
        torch.manual_seed(cfg["model_seed"])  # the same seed before each: equal parameters in equal order
        # As constructed, in training mode, as KernelBench runs it; cast only to a dtype the problem declares
        model = cls(*init_inputs)
        return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device=device)

    stage = "the problem's import"
    try:
        problem = load_source(cfg["problem_source"], cfg["problem_file"], "problem_under_test")
        stage = "get_init_inputs"
        init_inputs = list(call_sized(problem.get_init_inputs, cfg["size"]))
        stage = "import" if cfg["role"] == "candidate" else "construct"
        if cfg["role"] == "candidate":
            module = load_source(cfg["candidate_source"], cfg["candidate_file"], "candidate_under_test")
            stage = "construct"
            if not hasattr(module, "ModelNew"):
                raise AttributeError("the candidate defines no class ModelNew")
            model = build(module.ModelNew)
        else:
            model = build(problem.Model)
    except BaseException as exc:  # noqa: B036 - SystemExit from a candidate is a failure to import too
        chan.send("compile_error", stage=stage, error=_tail(traceback.format_exc()), summary=_summary(exc))
        os._exit(0)
    runner = Runner(torch, cfg, problem, model, chan)
    facts = {}
    if cfg["role"] == "reference" and not cfg.get("checker"):   # the checker's facts would go unread
        from harness.device import device_info, versions
        facts = json.loads(json.dumps({"hardware": device_info(device),
                                       "versions": {**versions(), "cuda": torch.version.cuda}}, default=str))
    if device.type == "cuda":
        facts["free_bytes"] = torch.cuda.mem_get_info(device)[0]
    chan.send("ready", digest=runner.method, threads=torch.get_num_threads(), uid=os.getuid(), pid=os.getpid(), **facts)
    while True:
        cmd, fds = chan.command()
        try:
            if cmd["cmd"] == "batch":
                # repeat is asked of the reference only, by keyword: a candidate's batch is called as it always was
                runner.batch(cmd["calls"], cmd.get("probe", False), cmd.get("finite", False), cmd.get("id", 0),
                             **({"repeat": True} if cmd.get("repeat") else {}))
            elif cmd["cmd"] == "quiet":   # untimed, before a timed reference batch on CUDA
                chan.send("quiet", **runner.quiet())
            elif cmd["cmd"] == "anchor":   # the output's digests under a fixed key: a certificate's anchor
                runner.key = (0, 0)
                runner.batch([cmd["call"]])
                runner.key = tuple(cfg["digest_key"])
            elif cmd["cmd"] == "export":
                runner.export(cmd["items"], fds[0])
            elif cmd["cmd"] == "check" and cfg["role"] == "reference":
                runner.check(cmd["items"], fds[0])
            else:
                break
        except BaseException as exc:  # noqa: B036
            chan.send("runtime_error", stage=cmd.get("cmd"), error=_tail(traceback.format_exc()), summary=_summary(exc))
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)   # skip interpreter teardown: a candidate's atexit hooks get no say
