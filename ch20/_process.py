"""One verifier child process, seen from the parent: start it, talk to it, and always get it back.

Messages arrive as JSON lines on a pipe and must carry the nonce this side made up; the child is in
its own process group, so a timeout kills it and everything it started, and the caller returns within
its deadline plus the time a SIGKILL takes.
"""
from __future__ import annotations

import ast
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from harness.process import child_env

_LIVE: set[int] = set()   # pids of the children this process started and still owns
_LIVE_LOCK = threading.Lock()  # a sweep in another thread must not see a new child before it is in _LIVE


def _become_subreaper() -> None:
    """Orphans of a child (a double-forked, setsid daemon escapes killpg) get this process as their parent,
    so _sweep_orphans can find and kill them: a daemon left running could load the machine while a later
    reference is timed, and so inflate a later candidate's speedup."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER (Linux)
    except (OSError, AttributeError):
        pass


def _sweep_orphans() -> None:
    """SIGKILL processes re-parented to us from another session (our own children stay in ours)."""
    with _LIVE_LOCK:
        _sweep_locked()


def _sweep_locked() -> None:
    me, my_sid = os.getpid(), os.getsid(0)
    for _ in range(20):
        found = False
        for entry in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid, ppid = int(entry.parent.name), int(entry.read_text().rsplit(")", 1)[1].split()[1])
                if ppid != me or pid in _LIVE or os.getsid(pid) == my_sid:
                    continue
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                found = True
            except (OSError, ValueError, IndexError):
                continue
        if not found:
            return
        time.sleep(0.01)


class ChildTimeout(Exception):
    pass


class ForgedMessage(Exception):
    pass


def load_result(path: Path):
    """Read a file the child wrote with Trusted.save; anything malformed is a forgery."""
    try:
        data = Path(path).read_bytes()
        head, _, body = data.partition(b"\n")

        def unpack(o):
            if isinstance(o, tuple) and len(o) == 5 and o[0] == "__tensor__":
                _, dtype, shape, offset, nbytes = o
                dtype = getattr(torch, dtype)
                if not isinstance(dtype, torch.dtype) or offset + nbytes > len(body):
                    raise ValueError("bad tensor header")
                if not nbytes:
                    return torch.empty(shape, dtype=dtype)
                raw = torch.frombuffer(bytearray(body[offset:offset + nbytes]), dtype=torch.uint8)
                return raw.view(dtype).reshape(shape)
            if isinstance(o, dict):
                return {k: unpack(v) for k, v in o.items()}
            if isinstance(o, list):
                return [unpack(v) for v in o]
            return o

        return unpack(ast.literal_eval(head.decode()))
    except Exception as exc:
        raise ForgedMessage(f"an unreadable result file {Path(path).name} ({type(exc).__name__}: {exc})") from exc


class Child:
    def __init__(self, config: dict, workdir: Path, deadline: float):
        self.deadline = deadline
        self.nonce = secrets.token_hex(16)
        self.stamps: dict[str, float] = {}
        self.buf = b""
        self.log_path = workdir / "child.log"
        read_fd, write_fd = os.pipe()
        env = child_env()
        if config["device"] == "cpu":
            env["TRITON_INTERPRET"] = "1"  # Triton kernels run in its interpreter on the CPU
        _become_subreaper()
        with _LIVE_LOCK, open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ch20._child"], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), start_new_session=True, cwd=workdir, env=env)
            _LIVE.add(self.proc.pid)
        os.close(write_fd)
        self.read_fd = read_fd
        self._send_line(json.dumps({**config, "msg_fd": write_fd, "nonce": self.nonce}))

    def _send_line(self, text: str) -> None:
        try:
            self.proc.stdin.write((text + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child is gone; recv() reports how it ended

    def command(self, text: str) -> None:
        self._send_line(text)

    def recv(self) -> dict | None:
        """The next message, or None when the child closed the channel (exited or crashed)."""
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ChildTimeout()
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if not ready:
                raise ChildTimeout()
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            msg = ast.literal_eval(line.decode())  # the child writes repr(), not json (see _child._repr)
        except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
            raise ForgedMessage("an unreadable message on the result channel") from exc
        if not isinstance(msg, dict) or msg.get("nonce") != self.nonce:
            raise ForgedMessage("a message on the result channel without the verifier's nonce (forged)")
        self.stamps[msg.get("event", "?")] = time.monotonic()
        return msg

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _LIVE.discard(self.proc.pid)
        _sweep_orphans()

    def finish(self, grace_s: float = 10.0) -> int | None:
        """Wait for a clean exit (bounded by the deadline), then make sure nothing of it is left."""
        try:
            self.proc.wait(timeout=max(0.1, min(grace_s, self.deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        self.close()
        return self.proc.returncode

    def close(self) -> None:
        for f in (self.proc.stdin,):
            try:
                f.close()
            except OSError:
                pass
        try:
            os.close(self.read_fd)
        except OSError:
            pass
        self.read_fd = -1

    def exit_description(self) -> str:
        rc = self.proc.poll()
        if rc is None:
            return "still running"
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exited with status {rc}"

    def log_tail(self, nbytes: int = 3000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - nbytes))
                return f.read().decode(errors="replace").strip()
        except OSError:
            return ""
