"""One verifier child process, seen from the parent: start it, talk to it, and always get it back.

Messages arrive as JSON lines on a pipe and must carry the nonce this side made up; the child is in
its own process group, so a timeout kills it and everything it started, and the caller returns within
its deadline plus the time a SIGKILL takes.
"""
from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.device import REPO_ROOT


class ChildTimeout(Exception):
    pass


class ForgedMessage(Exception):
    pass


class Child:
    def __init__(self, config: dict, workdir: Path, deadline: float):
        self.deadline = deadline
        self.nonce = secrets.token_hex(16)
        self.stamps: dict[str, float] = {}
        self.buf = b""
        self.log_path = workdir / "child.log"
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        if config["device"] == "cpu":
            env["TRITON_INTERPRET"] = "1"  # Triton kernels run in its interpreter on the CPU
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ch20._child"], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), start_new_session=True, cwd=workdir, env=env)
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
            msg = json.loads(line)
        except ValueError as exc:
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
