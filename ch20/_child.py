"""The verifier's child process: the only process that ever imports a candidate.

The parent writes one JSON line of configuration to stdin, holding a nonce; it is read here before any
candidate code exists, and stdin is then moved off fd 0. Messages go back as JSON lines carrying the
nonce, on a pipe the configuration names; tensors go back in files that the parent loads with
``weights_only=True`` and judges in its own process, with its own torch, which no candidate has touched.
Commands from the parent ("time" or "stop") arrive on the moved stdin.

Role "reference" imports only the problem; role "candidate" imports the problem and the candidate and,
per trial, runs the candidate, then the reference, then the candidate again, with freed memory
poisoned before each call. Timing uses clock and event functions bound before the candidate is
imported, so replacing ``time.perf_counter`` or ``torch.cuda.Event.elapsed_time`` changes nothing here.
"""
from __future__ import annotations

import faulthandler
import hashlib
import json
import os
import sys
import time
import traceback

# Bound before any candidate code runs: a candidate that later replaces these names in their modules
# changes the modules, not these objects.
_clock = time.perf_counter
_sha256 = hashlib.sha256
_dumps = json.dumps
_os_write = os.write
_os_read = os.read
_os_open = os.open
_os_close = os.close
# Messages and result files are encoded with repr (C code of builtin types, which no assignment can
# replace) rather than json or torch.save, whose Python internals (json.JSONEncoder.encode,
# torch.serialization._save, pickle.Pickler) a candidate can patch to rewrite results on their way out.
_repr = repr
_UNSET = object()  # "this timing set was never called", as opposed to a call that returned None


def _channel(msg_fd: int, cmd_fd: int, nonce: str):
    """send(event, **fields) and command() -> str, with the nonce kept in this closure only."""
    def send(event: str, **fields) -> None:
        data = (_repr({"nonce": nonce, "event": event, **fields}) + "\n").encode()
        while data:
            data = data[_os_write(msg_fd, data):]

    def command() -> str:
        line = b""
        while not line.endswith(b"\n"):
            chunk = _os_read(cmd_fd, 1)
            if not chunk:
                return "stop"
            line += chunk
        return line.decode().strip()

    return send, command


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _is_compile_error(exc: BaseException) -> bool:
    """Triton compiles at the first call: its errors mean "does not compile", not "runs but wrong"."""
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"CompilationError", "CompileTimeAssertionFailure", "OutOfResources"})


class Trusted:
    """The functions timing and snapshots rely on, captured before the candidate is imported."""

    def __init__(self, torch, device):
        self.torch = torch
        self.cuda = device.type == "cuda"
        self.device = device
        self.no_grad = torch.no_grad
        self.tensor_cls = torch.Tensor
        self.to = torch.Tensor.to
        self.clone = torch.Tensor.clone
        self.detach = torch.Tensor.detach
        self.contiguous = torch.Tensor.contiguous
        self.reshape = torch.Tensor.reshape
        self.view = torch.Tensor.view
        self.uint8 = torch.uint8
        self.numpy = torch.Tensor.numpy
        self.data_of = torch.Tensor.data.__get__  # an alias whose writes do not bump the version counter
        self.copy_ = torch.Tensor.copy_
        self._equal = torch.equal
        # Inside this context neither tensor subclasses nor TorchFunctionModes see the captured calls.
        self.plain_torch = torch._C.DisableTorchFunction
        self.dispatch_modes = torch._C._len_torch_dispatch_stack
        if self.cuda:
            ev = torch.cuda.Event
            self.event_cls, self.record = ev, ev.record
            self.elapsed = ev.elapsed_time
            self.event_sync = ev.synchronize
            self._sync = torch.cuda.synchronize
            self.tensor_sum = torch.Tensor.sum
            self.full = torch.full

    def equal(self, a, b) -> bool:
        return a.dtype == b.dtype and a.shape == b.shape and bool(self._equal(a, b))

    def sync(self) -> None:
        if self.cuda:
            self._sync(self.device)

    def snapshot(self, out) -> tuple[object, list]:
        """(structure, tensors): the output's shape of containers, and CPU copies of its tensors."""
        if self.dispatch_modes():
            raise RuntimeError("a TorchDispatchMode is active: it could fake what the verifier reads")
        # Device-wide first: work a candidate left on a side stream is finished before its output is read,
        # so the verdict does not depend on a race (the time of that work is inside the timed samples).
        self.sync()
        with self.plain_torch():
            return self._snapshot(out)

    def _snapshot(self, out) -> tuple[object, list]:
        # Exact types only: a tensor subclass can run its real work lazily, when this snapshot touches it
        # (after the timer stopped), so a subclass is rejected rather than unwrapped.
        if type(out) is self.tensor_cls:
            return "tensor", [self.clone(self.to(self.detach(out), "cpu"))]
        if isinstance(out, self.tensor_cls):
            raise TypeError(f"returned a tensor subclass ({type(out).__name__}); return a plain torch.Tensor")
        if type(out) in (tuple, list):
            parts = [self._snapshot(o) for o in out]
            return [type(out).__name__, [p[0] for p in parts]], [t for p in parts for t in p[1]]
        if type(out) is dict:
            keys = sorted(out)
            parts = [self._snapshot(out[k]) for k in keys]
            return ["dict", keys, [p[0] for p in parts]], [t for p in parts for t in p[1]]
        raise TypeError(f"returned {type(out).__name__}; expected a tensor (or the reference's tuple/dict of them)")

    def digest(self, x) -> str:
        """The same fingerprint as ch20.problem.tensor_sha256, from captured functions."""
        h = _sha256()
        if isinstance(x, self.tensor_cls):
            c = self.contiguous(self.to(self.detach(x), "cpu"))
            h.update(f"{c.dtype}{tuple(c.shape)}".encode())
            if c.numel():
                h.update(self.numpy(self.view(self.reshape(c, -1), self.uint8)).tobytes())
        else:
            h.update(repr(x).encode())
        return h.hexdigest()

    def save(self, path: str, obj) -> None:
        """Write obj (dicts, lists, strings, numbers, plain CPU tensors) for verify.load_result: one line of
        repr'd structure with each tensor as ("__tensor__", dtype, shape, offset, nbytes), then the raw bytes."""
        blobs, size = [], [0]

        def pack(o):
            if type(o) is self.tensor_cls:
                c = self.contiguous(o)
                raw = self.numpy(self.view(self.reshape(c, -1), self.uint8)).tobytes() if c.numel() else b""
                blobs.append(raw)
                size[0] += len(raw)
                return ("__tensor__", str(c.dtype).replace("torch.", ""), list(c.shape), size[0] - len(raw), len(raw))
            if type(o) is dict:
                return {k: pack(v) for k, v in o.items()}
            if type(o) in (list, tuple):
                return [pack(v) for v in o]
            return o

        head = (_repr(pack(obj)) + "\n").encode()
        fd = _os_open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for data in [head, *blobs]:
                while data:
                    data = data[_os_write(fd, data):]
        finally:
            _os_close(fd)

    def poison(self, sizes: list[int]) -> None:
        """NaN in the freed blocks that outputs of these sizes would get next (CUDA caching allocator)."""
        if self.cuda:
            for nbytes in sizes:
                if nbytes > 0:
                    self.full(((nbytes + 3) // 4,), float("nan"), dtype=self.torch.float32, device=self.device)
        else:  # glibc may hand a freed small block straight back; large ones come from fresh zeroed pages
            for nbytes in sizes:
                if 0 < nbytes <= 1 << 20:
                    self.torch.full(((nbytes + 3) // 4,), float("nan"))

    def measure(self, fn, cfg: dict, should_stop) -> dict:
        """harness.timing.measure's method, on captured clocks; raw samples go to the parent."""
        flush = None
        if self.cuda and cfg["cold_l2"]:
            props = self.torch.cuda.get_device_properties(self.device)
            l2 = getattr(props, "L2_cache_size", 0) or 64 * 2**20
            buf = self.torch.ones(2 * l2 // 4, dtype=self.torch.int32, device=self.device)
            flush = lambda: self.tensor_sum(buf)  # noqa: E731  (a read, as the harness: no dirty lines to write back)
        t0, calls = _clock(), 0
        while calls < cfg["min_warmup_calls"] or _clock() - t0 < cfg["warmup_s"]:
            fn()
            calls += 1
            self.sync()
        warmup_s = _clock() - t0
        reps = 1 if flush else max(1, min(1000, int(-(-cfg["min_sample_s"] // max(warmup_s / calls, 1e-9)))))
        device_s, wall_s = [], []
        started = _clock()
        while True:
            if flush:
                flush()
            if self.cuda:
                start, end = self.event_cls(enable_timing=True), self.event_cls(enable_timing=True)
                w0 = _clock()
                self.record(start)
                for _ in range(reps):
                    fn()
                self.sync()  # device-wide: work left on side streams is inside the sample
                self.record(end)
                self.event_sync(end)
                wall_s.append((_clock() - w0) / reps)
                device_s.append(self.elapsed(start, end) / 1e3 / reps)
            else:
                w0 = _clock()
                for _ in range(reps):
                    fn()
                wall_s.append((_clock() - w0) / reps)
                device_s.append(wall_s[-1])
            stop, converged = should_stop(device_s, _clock() - started, cfg["config"])
            if stop:
                break
        return {"device_s": device_s, "wall_s": wall_s, "reps": reps, "warmup_calls": calls,
                "warmup_s": warmup_s, "loop_s": _clock() - started, "converged": converged}


def _device_facts(torch, device) -> dict:
    from harness.device import device_info, versions
    return {"hardware": device_info(device), "versions": {**versions(), "cuda": torch.version.cuda}}


def _peaks(torch, device, dtype) -> dict:
    """Rates this GPU reaches with plain torch, measured here: the ceiling for the above-peak check."""
    out = {}
    x = torch.empty(256 * 2**20 // 4, dtype=torch.float32, device=device)
    y = torch.empty_like(x)
    a = torch.randn(4096, 4096, device=device).to(dtype if dtype in (torch.bfloat16, torch.float16) else torch.bfloat16)
    for name, fn, amount in (("copy_gbps", lambda: y.copy_(x), 2 * x.numel() * 4 / 1e9),
                             ("matmul_tflops", lambda: a @ a, 2 * 4096**3 / 1e12)):
        for _ in range(3):
            fn()
        torch.cuda.synchronize(device)
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(10):
            fn()
        e.record()
        e.synchronize()
        out[name] = amount / (s.elapsed_time(e) / 10 / 1e3)
    out["matmul_dtype"] = str(a.dtype)
    return out


def main() -> int:
    faulthandler.enable()  # a segfaulting kernel leaves a Python traceback in the log for the feedback
    cfg = json.loads(sys.stdin.readline())
    nonce = cfg.pop("nonce")
    cmd_fd = os.dup(0)  # commands keep coming on the old stdin; the candidate sees /dev/null as fd 0
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    send, command = _channel(cfg["msg_fd"], cmd_fd, nonce)
    del nonce
    if cfg["device"] == "cpu" and cfg.get("memory_bytes"):
        import resource  # CUDA needs a huge virtual address space, so the limit is for CPU runs only
        resource.setrlimit(resource.RLIMIT_AS, (cfg["memory_bytes"], cfg["memory_bytes"]))

    import torch

    from ch20.problem import call_sized, load_module
    from harness.timing import TimingConfig, should_stop

    device = torch.device(cfg["device"])
    trusted = Trusted(torch, device)
    dtype = getattr(torch, cfg["dtype"])
    timing = {**cfg["timing"], "config": TimingConfig(**cfg["timing"])}
    work = cfg["workdir"]
    role = cfg["role"]

    problem = load_module(cfg["problem"], "problem_under_test")
    init_inputs = list(call_sized(problem.get_init_inputs, cfg["size"]))
    data = torch.load(os.path.join(work, "inputs.pt"), weights_only=True)
    facts = json.loads(_dumps(_device_facts(torch, device), default=str)) if role == "reference" else {}

    def build(cls):
        torch.manual_seed(cfg["model_seed"])  # same seed before each: equal parameters in equal order
        return cls(*init_inputs).to(device=device, dtype=dtype).eval()

    stage = "import"
    try:
        if role == "candidate":
            module = load_module(cfg["candidate"], "candidate_under_test")
            stage = "construct"
            if not hasattr(module, "ModelNew"):
                raise AttributeError("the candidate defines no class ModelNew")
            new = build(module.ModelNew)
        ref = build(problem.Model)
    except BaseException as exc:  # noqa: B036 - SystemExit from a candidate is a failure to import too
        send("compile_error", stage=stage, error=_tail(traceback.format_exc()),
             summary=f"{type(exc).__name__}: {exc}".splitlines()[0][:300] if str(exc) else type(exc).__name__)
        return 0
    send("ready", **facts)

    def on_device(xs):
        return [x.to(device) if isinstance(x, torch.Tensor) else x for x in xs]

    sizes = cfg.get("poison_sizes", [])
    results = []
    stage = "run"
    with trusted.no_grad():
        if role == "reference":
            for name in ("trials", "timing", "probe"):
                group = data[name] if name != "probe" else [data["probe"]]
                outs = []
                for xs in group:
                    structure, tensors = trusted.snapshot(ref(*on_device(xs)))
                    outs.append({"structure": structure, "tensors": tensors})
                results.append((name, outs))
            trusted.save(os.path.join(work, "outputs.pt"), dict(results))
            send("outputs", file="outputs.pt")
            fn_model, rotation = ref, data["timing"]
        else:
            for i, xs in enumerate(data["trials"]):
                xs = on_device(xs)
                record = {}
                try:
                    for key, model in (("before", new), ("ref", ref), ("after", new)):
                        trusted.poison(sizes)
                        who = "the reference" if key == "ref" else "the candidate"
                        out = model(*xs)
                        trusted.sync()
                        record[key + "_structure"], record[key] = trusted.snapshot(out)
                        del out
                        record[key + "_inputs"] = [trusted.digest(x) for x in xs]
                    # Keep the files small at full size: a repeat that is bitwise the first answer is not sent
                    # twice (compared by a captured torch.equal on plain CPU copies), and the reference computed
                    # here is sent for the first trial only (enough to see a torch the candidate changed).
                    if record["after_structure"] == record["before_structure"] and all(
                            trusted.equal(a, b) for a, b in zip(record["after"], record["before"], strict=True)):
                        record["after"] = None
                    if i > 0:
                        record["ref"] = None
                except BaseException as exc:  # noqa: B036
                    kind = "compile_error" if _is_compile_error(exc) else "runtime_error"
                    send(kind, stage="run", trial=i, who=who, error=_tail(traceback.format_exc()),
                         summary=f"{type(exc).__name__}: {exc}".splitlines()[0][:300] if str(exc) else type(exc).__name__)
                    return 0
                results.append(record)
                del xs
            trusted.save(os.path.join(work, "outputs.pt"), {"trials": results})
            send("outputs", file="outputs.pt")
            if command() != "time":
                return 0
            fn_model, rotation = new, data["timing"]

        sets = [on_device(xs) for xs in rotation]
        last = [_UNSET] * len(sets)
        counter = [0]

        def call():
            i = counter[0] % len(sets)
            counter[0] += 1
            last[i] = fn_model(*sets[i])

        stage = "timing"
        send("timing_start")
        try:
            raw = trusted.measure(call, timing, should_stop)
        except BaseException as exc:  # noqa: B036
            send("runtime_error", stage="timing", trial=None, who="timing", error=_tail(traceback.format_exc()),
                 summary=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            return 0
        send("timing_end")
        try:
            trusted.sync()
            timed_outputs, canary = [], []
            for out in last:  # what the timed calls themselves returned, judged by the parent too
                structure, tensors = trusted.snapshot(out) if out is not _UNSET else (None, [])
                timed_outputs.append({"structure": structure, "tensors": tensors})
            if role == "candidate":
                # The same input tensors (same id, data_ptr and version) with a trial's contents written into
                # them: a kernel that caches its answer by input identity returns the stale one here.
                for i, xs in enumerate(sets):
                    for x, src in zip(xs, on_device(data["trials"][i % len(data["trials"])]), strict=True):
                        if isinstance(x, trusted.tensor_cls):
                            trusted.copy_(trusted.data_of(x), src)
                    trusted.sync()
                    structure, tensors = trusted.snapshot(fn_model(*xs))
                    canary.append({"structure": structure, "tensors": tensors})
        except BaseException as exc:  # noqa: B036
            send("runtime_error", stage="timing", trial=None, who="timing", error=_tail(traceback.format_exc()),
                 summary=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            return 0
        trusted.save(os.path.join(work, "timed.pt"), {"timed": timed_outputs, "canary": canary})
        peaks = _peaks(torch, device, dtype) if role == "reference" and trusted.cuda and cfg.get("peaks") else {}
        send("timing", raw=raw, calls=counter[0], file="timed.pt", peaks=peaks)
    send("done")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: a candidate's atexit hooks get no say after the verdict
