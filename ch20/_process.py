"""One verifier child, seen from the parent: start it, talk to it under a deadline, freeze it, and always
get it back.

Commands and replies travel on a Unix socket pair (never a file); descriptors (the memfds that carry
exported outputs) go with them. Every read waits at most until the caller's deadline and reads at most
MAX_LINE bytes per reply. The child's output goes to a memfd, which no process can swap for a named pipe.
"""
from __future__ import annotations

import ast
import functools
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

from ch20 import sandbox
from ch20.screen import AST_LOCK

MAX_LINE = 16 << 20    # bytes of one reply: a batch of KernelBench-sized outputs needs a few hundred KiB
MAX_ITEMS = 250_000    # its elements, counted before parsing: literal_eval of a 16 MiB list of zeros takes
                       # gigabytes and tens of seconds, a denial of service on the verifier itself
_LIVE: set[int] = set()        # pids of the children this process started and still owns
_LIVE_LOCK = threading.RLock()


def owned_pids() -> set[int]:
    return set(_LIVE)


def _become_subreaper() -> None:
    """Orphans of a child (a double-forked daemon) get this process as their parent, so they are found and
    killed even where no PID namespace is available."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER (Linux)
    except (OSError, AttributeError):
        pass


MAX_LOG = 64 << 20    # bytes of its stdout and stderr
MAX_FILES = 4096      # descriptors it may hold open (the memory watcher reads each one's target)
IN_MEMORY_FILES = ("/memfd:", "/dev/shm/", "/tmp/", "/var/tmp/")   # memfds; tmpfs in its mount namespace
MAX_TASKS = 2048   # processes and threads of the unprivileged user the candidate runs as (a fork bomb stops here)


def _child_limits(own_uid: bool) -> None:
    """In the child before exec: SIGKILL when the verifier dies, so a killed verifier leaves no child holding
    the device (PR_SET_PDEATHSIG; unshare --kill-child passes it on into the namespace); no core file (a
    crashing candidate would write one the size of its memory); and, when it runs as a user of its own, a cap
    on that user's processes and threads (under the verifier's own user the count would include all of its
    other processes, so there is none)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(MAX_FILES, resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
                                                    MAX_FILES))
        if own_uid:
            resource.setrlimit(resource.RLIMIT_NPROC, (MAX_TASKS, MAX_TASKS))
    except (OSError, ValueError):
        pass


class ChildTimeout(Exception):
    pass


class MemoryCapExceeded(Exception):
    """The child and what it started hold more host memory, or wrote more output, than it may (the message
    says which and how much)."""


def host_memory_cap() -> int:
    """Half of the host memory available now: a candidate that allocates without bound is stopped before the
    kernel's OOM killer picks a victim (the verifier or the reference, say)."""
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return info["MemAvailable"] // 2
    except (OSError, KeyError, ValueError, IndexError):
        return 1 << 62


class ForgedMessage(Exception):
    pass


class Child:
    def __init__(self, config: dict, *, sandboxed: bool, deadline: float, threads: int, memory_cap: int | None = None):
        self.deadline = deadline
        self.memory_cap = memory_cap   # bytes of resident host memory for it and all it started; None: no cap
        self.nonce = secrets.token_hex(16)
        self.buf = b""
        self.frozen = False
        self.closed = False
        self.cpu_while_frozen, self.frozen_windows, self._cpu_at_freeze = 0.0, 0, 0.0
        self.log_fd = os.memfd_create("ch20-child-log", os.MFD_CLOEXEC)
        parent_sock, child_sock = socket.socketpair()
        self.sock = parent_sock
        info = sandbox.probe(config["device"]) if sandboxed else {"prefix": [], "uid": os.getuid()}
        namespaced = bool(info["prefix"]) and info["prefix"][0] == "unshare"
        self.workdir = None
        if namespaced:
            home = "/tmp"   # the private tmpfs of its own mount namespace; the script makes its work dir
            cwd = "/"
        else:
            self.workdir = tempfile.mkdtemp(prefix="ch20-child-")
            if info["uid"] != os.getuid():
                os.chown(self.workdir, info["uid"], info["uid"])
            home = cwd = self.workdir
        extra = {"CH20_CHANNEL_FD": str(child_sock.fileno())}
        if config["device"] == "cpu":
            extra["TRITON_INTERPRET"] = "1"   # Triton kernels run in its interpreter on the CPU
        env = sandbox.base_env(home, threads, extra)
        _become_subreaper()
        with _LIVE_LOCK:
            self.proc = subprocess.Popen(sandbox.boot_command(sandboxed, config["device"]), stdin=subprocess.DEVNULL,
                                         stdout=self.log_fd, stderr=self.log_fd, pass_fds=(child_sock.fileno(),),
                                         start_new_session=True, cwd=cwd, env=env,
                                         preexec_fn=functools.partial(_child_limits, info["uid"] != os.getuid()))
            _LIVE.add(self.proc.pid)
        child_sock.close()
        self.over_cap = ""
        if memory_cap is not None:
            threading.Thread(target=self._watch_memory, name="ch20-memory-cap", daemon=True).start()
        self.send({**config, "nonce": self.nonce})

    # ---- the channel ----
    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ChildTimeout()
        return left

    def send(self, msg: dict, fds: tuple[int, ...] = ()) -> None:
        data = (json.dumps(msg) + "\n").encode()
        try:
            self.sock.settimeout(self._left())
            if fds:
                socket.send_fds(self.sock, [data], list(fds))
            else:
                self.sock.sendall(data)
        except TimeoutError as exc:
            raise ChildTimeout() from exc
        except OSError:
            pass   # the child is gone; recv() reports how it ended

    def recv(self) -> dict | None:
        """The next reply, or None when the child closed the channel (exited or crashed)."""
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.sock], [], [], self._left())
            if self.over_cap:
                raise MemoryCapExceeded(self.over_cap)
            if not ready:
                raise ChildTimeout()
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                if self.over_cap:
                    raise MemoryCapExceeded(self.over_cap)
                return None
            self.buf += chunk
            if len(self.buf) > MAX_LINE:
                raise ForgedMessage(f"a reply longer than {MAX_LINE} bytes on the result channel")
        line, self.buf = self.buf.split(b"\n", 1)
        if line.count(b",") + line.count(b"[") + line.count(b"(") + line.count(b"{") > MAX_ITEMS:
            raise ForgedMessage(f"a reply of more than {MAX_ITEMS} elements on the result channel")
        try:
            with AST_LOCK:   # see AST_LOCK
                msg = ast.literal_eval(line.decode())   # the child writes repr(), never pickle
        except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError, TypeError) as exc:
            raise ForgedMessage("an unreadable reply on the result channel") from exc
        if not isinstance(msg, dict) or msg.get("nonce") != self.nonce or not isinstance(msg.get("event"), str):
            raise ForgedMessage("a reply on the result channel without the verifier's nonce (forged)")
        return msg

    def request(self, msg: dict, fds: tuple[int, ...] = ()) -> dict | None:
        self.send(msg, fds)
        return self.recv()

    # ---- the processes ----
    def freeze(self) -> None:
        """SIGSTOP it and everything it started: nothing of it runs while the reference is timed. Its CPU time
        is read once all of it shows stopped, and again at the thaw: what it used in between escaped the freeze."""
        sandbox.freeze(self.proc.pid)
        self._cpu_at_freeze = self.cpu_seconds()
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            self.cpu_while_frozen += max(0.0, self.cpu_seconds() - self._cpu_at_freeze)
            self.frozen_windows += 1
        sandbox.thaw(self.proc.pid)
        self.frozen = False

    def rss_bytes(self, proportional: bool = False, pids: list[int] | None = None) -> int:
        """Resident host memory of it and everything it started, from /proc: cheap (statm) with the pages that
        forked processes share counted once per process, or `proportional` (smaps_rollup's Pss: each shared
        page split among its sharers; the kernel walks every mapping, so only to confirm). `pids`: its process
        tree if the caller has just listed it."""
        total, page = 0, os.sysconf("SC_PAGE_SIZE")
        for pid in self.proc_tree() if pids is None else pids:
            try:
                if proportional:
                    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                        total += next(int(line.split()[1]) * 1024 for line in f if line.startswith(b"Pss:"))
                else:
                    with open(f"/proc/{pid}/statm", "rb") as f:
                        total += int(f.read().split()[1]) * page
            except (OSError, ValueError, IndexError, StopIteration):
                continue
        return total

    def held_file_bytes(self, pids: list[int] | None = None) -> int:
        """Memory in files it holds open that live in memory (memfds, tmpfs): the RSS leaves them out until
        mapped and touched, and a memfd holds its pages as long as one descriptor does."""
        seen, total = set(), 0
        for pid in self.proc_tree() if pids is None else pids:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if not target.startswith(IN_MEMORY_FILES):
                        continue
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
        return total

    def _watch_memory(self) -> None:
        """A thread for the child's whole life, whoever the verifier is waiting for (the candidate imports while
        the reference calibrates): over the cap, the child is killed and its next reply is the reason."""
        while not self.closed and self.proc.poll() is None:
            pids = self.proc_tree()   # one walk of /proc a tick serves both measures
            held = self.held_file_bytes(pids)
            rss = self.rss_bytes(pids=pids) + held
            if rss > self.memory_cap and (rss := self.rss_bytes(True, pids) + held) > self.memory_cap:
                self.over_cap = (f"it held {rss / 2**30:.2f} GiB of host memory, over its cap of "
                                 f"{self.memory_cap / 2**30:.2f} GiB (half the memory available when it started)")
            else:
                try:   # its stdout and stderr: a memfd of the verifier's, memory its RSS does not show
                    logged = os.fstat(self.log_fd).st_size
                except OSError:
                    return
                if logged > MAX_LOG:
                    self.over_cap = f"it wrote {logged / 2**20:.0f} MiB to its output, over the cap of {MAX_LOG >> 20} MiB"
            if self.over_cap:
                self.kill()
                return
            time.sleep(0.1)

    def proc_tree(self) -> list[int]:
        """Its pid and those of everything it started (from /proc)."""
        return sandbox.descendants(self.proc.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time of it and everything it started (from /proc)."""
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.proc_tree():
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
            except (OSError, ValueError, IndexError):
                continue
        return total

    def kill(self) -> None:
        sandbox.kill_tree(self.proc.pid)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        with _LIVE_LOCK:
            _LIVE.discard(self.proc.pid)
            sandbox.signal_all(self.proc.pid, signal.SIGKILL)   # orphans adopted by this process

    def finish(self, grace_s: float = 5.0) -> None:
        """Ask it to stop, wait briefly (within the deadline), then make sure nothing of it is left."""
        if self.closed:
            return
        self.closed = True
        if self.frozen:
            self.thaw()
        try:
            self.send({"cmd": "stop"})
        except ChildTimeout:
            pass
        try:
            self.proc.wait(timeout=max(0.1, min(grace_s, self.deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        for closer in (self.sock.close, lambda: os.close(self.log_fd)):
            try:
                closer()
            except OSError:
                pass
        if self.workdir:
            import shutil
            shutil.rmtree(self.workdir, ignore_errors=True)

    def exit_description(self) -> str:
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        rc = self.proc.returncode
        if rc < 0:
            try:
                return f"was killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"was killed by signal {-rc}"
        if rc >= 128 and rc - 128 in signal.valid_signals():   # through sh/unshare: 128 + the signal
            try:
                return f"was killed by {signal.Signals(rc - 128).name}"
            except ValueError:
                pass
        return f"exited with status {rc}"

    def log_tail(self, nbytes: int = 3000) -> str:
        try:
            size = os.fstat(self.log_fd).st_size
            return os.pread(self.log_fd, nbytes, max(0, size - nbytes)).decode(errors="replace").strip()
        except OSError:
            return ""
