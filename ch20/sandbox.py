"""How verifier children are started, frozen and killed, and which isolation layers this machine allows.

Every child runs ``python -I`` (no PYTHON* variables, no user site, no script directory on the path) from
an empty private working directory, with only the repository prepended to its path. The candidate child
additionally runs, as far as the kernel allows:

    pid namespace      it sees only its own processes: it cannot signal or trace the verifier or the
                       reference child, and every process it starts dies with it
    mount namespace    private tmpfs on /tmp, /var/tmp and /dev/shm, the repository bound read-only:
                       nothing it writes survives, and no later child imports what it wrote
    network namespace  no interface but a down loopback
    ipc namespace      System V shared memory, semaphores and message queues of its own, gone with it
    unprivileged user  nobody (when the verifier runs as root), no capabilities, no_new_privs

Each layer is probed once per process by starting a tiny child through it; the verdict lists which layers
applied and which were unavailable, and why.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.device import REPO_ROOT

NOBODY = 65534
LAYERS = ("isolated_python", "private_cwd", "pid_namespace", "mount_namespace", "network_namespace",
          "readonly_repo", "private_tmp", "unprivileged_user")

# Runs inside the new mount namespace before the candidate's Python starts: fresh tmpfs where an
# unprivileged process could write, the repository read-only (bound onto itself), an empty work dir. The tmpfs
# sizes add up to a quarter of RAM (files there are memory its RSS cap does not see).
_MOUNT_SCRIPT = r"""
set -e
repo="$1"; shift
[ -d /var/tmp ] && mount -t tmpfs -o mode=1777,size=5% tmpfs /var/tmp || true
[ -d /dev/shm ] && mount -t tmpfs -o mode=1777,size=5% tmpfs /dev/shm || true
base=/tmp
case "$repo" in
  /tmp/*) [ -d /dev/shm ] && base=/dev/shm ;;   # /tmp holds the repository: kept; work in a private tmpfs instead
  *) mount -t tmpfs -o mode=1777,size=15% tmpfs /tmp ;;
esac
mount --bind "$repo" "$repo"
mount -o remount,bind,ro "$repo"
work=$(mktemp -d "$base/ch20-work.XXXXXX")
chmod 0777 "$work"
cd "$work"
export HOME="$work" TMPDIR="$work" TRITON_CACHE_DIR="$work/.triton" TORCHINDUCTOR_CACHE_DIR="$work/.inductor"
"$@"   # not exec: this shell stays PID 1, so the candidate is an ordinary process (signals it sends itself work)
"""

_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from ch20._child import main; main()")
_PROBE = ("import sys, os, glob, stat; sys.path.insert(0, sys.argv[1]); import importlib.util as u; "
          "open(u.find_spec('torch').origin).read(1); import ch20, harness; "
          "[os.close(os.open(d, os.O_RDWR)) for d in glob.glob('/dev/nvidia*') "
          " if sys.argv[2] == 'cuda' and stat.S_ISCHR(os.stat(d).st_mode)]; print('ok')")

_probed: dict = {}


def _try(cmd: list[str], cwd: str) -> tuple[bool, str]:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, env=base_env(cwd))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return done.returncode == 0 and done.stdout.strip().endswith("ok"), (done.stderr or done.stdout).strip()[-300:]


def base_env(home: str, threads: int = 1, extra: dict | None = None) -> dict:
    """The verifier's environment for a child: its own HOME and caches, a fixed small thread count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LD_PRELOAD"))}
    env.update(HOME=home, TMPDIR=home, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TRITON_CACHE_DIR=os.path.join(home, ".triton"),
               TORCHINDUCTOR_CACHE_DIR=os.path.join(home, ".inductor"), PYTHONUNBUFFERED="1")
    if threads > 1:
        env["OMP_WAIT_POLICY"] = "PASSIVE"   # spinning workers stall a shared machine
    env.update(extra or {})
    return env


def _layer_prefix(ns: bool, drop_user: bool, userns: bool) -> list[str]:
    prefix = []
    if ns:
        prefix = ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--net", "--ipc", "--mount-proc",
                  "--propagation", "private"] + (["--user", "--map-root-user"] if userns else []) + \
                 ["sh", "-c", _MOUNT_SCRIPT, "ch20-sandbox", str(REPO_ROOT)]
    if drop_user:
        prefix += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
                   "--bounding-set=-all", "--no-new-privs", "--"]
    elif ns:
        prefix += ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return prefix


def probe(device: str = "cpu") -> dict:
    """Which layers work here for a child on `device` (cached; on CUDA the sandboxed user must also open the
    GPU's device files): {"prefix": [...], "layers": {layer: "applied" | "unavailable: why"}, "uid": ...}."""
    if device in _probed:
        return _probed[device]
    root = os.geteuid() == 0
    have = {tool: shutil.which(tool) for tool in ("unshare", "setpriv")}
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    cwd = str(tmp)
    candidates = []   # (ns, drop_user, userns), strongest first
    if have["unshare"] and have["setpriv"]:
        candidates += [(True, root, not root), (True, False, not root)]
    if root and have["setpriv"]:
        candidates.append((False, True, False))
    candidates.append((False, False, False))
    why = {}
    chosen = (False, False, False)
    for ns, drop, userns in candidates:
        ok, err = _try(_layer_prefix(ns, drop, userns) + [sys.executable, "-I", "-c", _PROBE, str(REPO_ROOT), device], cwd)
        if ok:
            chosen = (ns, drop, userns)
            break
        why[(ns, drop)] = err.splitlines()[-1] if err else "failed"
    ns, drop, userns = chosen
    ns_reason = "applied" if ns else "unavailable: " + (why.get((True, root)) or why.get((True, False)) or
                                                       ("no unshare/setpriv" if not have["unshare"] else "not permitted"))
    layers = {"isolated_python": "applied", "private_cwd": "applied"}
    for layer in ("pid_namespace", "mount_namespace", "network_namespace", "ipc_namespace", "readonly_repo"):
        layers[layer] = ns_reason
    layers["private_tmp"] = ns_reason if not str(REPO_ROOT).startswith("/tmp/") or not ns else \
        "unavailable: the repository is under /tmp"
    if drop:
        layers["unprivileged_user"] = f"applied (uid {NOBODY})"
    elif not root:
        layers["unprivileged_user"] = ("unavailable: the verifier is not root; " +
                                       ("a user namespace without capabilities instead" if userns else "runs as this user"))
    else:
        layers["unprivileged_user"] = "unavailable: " + (why.get((True, True)) or why.get((False, True)) or "no setpriv")
    _probed[device] = {"prefix": _layer_prefix(ns, drop, userns), "layers": layers, "uid": NOBODY if drop else os.getuid()}
    return _probed[device]


def boot_command(sandboxed: bool, device: str = "cpu") -> list[str]:
    prefix = probe(device)["prefix"] if sandboxed else []
    return prefix + [sys.executable, "-I", "-c", _BOOT, str(REPO_ROOT)]


# ---- the processes of one child: find, freeze, thaw, kill ----------------------------------------------

def _ppids() -> dict[int, int]:
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                out[int(entry.name)] = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


def descendants(pid: int, *, adopted: bool = True) -> list[int]:
    """pid and every process below it; with `adopted`, also orphans re-parented to this (subreaper)
    process that are not among the children it started itself (an escaped daemon). Holds the lock under
    which children are started, so another thread's child, not yet registered, is never taken for one."""
    from ch20._process import _LIVE_LOCK
    with _LIVE_LOCK:
        return _descendants(pid, adopted)


def _descendants(pid: int, adopted: bool) -> list[int]:
    ppids = _ppids()
    kids: dict[int, list[int]] = {}
    for p, pp in ppids.items():
        kids.setdefault(pp, []).append(p)
    roots = [pid]
    if adopted:   # escaped daemons: re-parented to this subreaper, in a session of their own, not started by it
        from ch20._process import owned_pids
        mine, my_sid = owned_pids(), os.getsid(0)
        for p in kids.get(os.getpid(), []):
            try:
                if p not in mine and p != pid and os.getsid(p) != my_sid:
                    roots.append(p)
            except OSError:
                continue
    seen, todo = [], list(roots)
    while todo:
        p = todo.pop()
        if p in seen or p not in ppids:
            continue
        seen.append(p)
        todo += kids.get(p, [])
    return seen


def signal_all(pid: int, sig: int, rounds: int = 5) -> None:
    """Send `sig` to pid and all it started, until no new process shows up (a fork between scans)."""
    done: set[int] = set()
    for _ in range(rounds):
        found = [p for p in descendants(pid) if p not in done]
        if not found:
            return
        for p in found:
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass
            done.add(p)


def _states(pids: list[int]) -> dict[int, bytes]:
    """Each live pid's scheduler state letter from /proc (R, S, D, T, t, Z, ...); a pid already gone is left out."""
    out = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                out[p] = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
    return out


STOPPED, DEAD = (b"T", b"t"), (b"Z", b"X")


def _running(pids: list[int]) -> list[int]:
    """The pids neither stopped nor dead."""
    return [p for p, s in _states(pids).items() if s not in STOPPED + DEAD]


def freeze(pid: int, settle_s: float = 0.05) -> bool:
    """SIGSTOP pid and all it started, and wait (at most settle_s) until /proc shows every one of them stopped,
    signalling again any that a fork added meanwhile. False when some still ran at the end (a process that
    forks and exits faster than this can follow): its CPU time while frozen then tells (Child.thaw)."""
    signal_all(pid, signal.SIGSTOP)
    end = time.monotonic() + settle_s
    while True:
        running = _running(descendants(pid))
        if not running:
            return True
        if time.monotonic() > end:
            return False
        for p in running:
            try:
                os.kill(p, signal.SIGSTOP)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.0005)


def thaw(pid: int, settle_s: float = 0.02) -> None:
    """SIGCONT pid and all it started, and wait (at most settle_s) until /proc shows none of them stopped: the
    candidate's timer starts after it is awake again, as the reference's (never frozen) does."""
    signal_all(pid, signal.SIGCONT)
    end = time.monotonic() + settle_s
    while time.monotonic() < end:
        if not any(s in STOPPED for s in _states(descendants(pid)).values()):
            return
        time.sleep(0.0002)


def kill_tree(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    signal_all(pid, signal.SIGKILL)
    time.sleep(0)


# ---- a write into the import path survives even without the mount namespace: detect it ------------------

def import_path_state() -> dict[str, tuple]:
    """(mtime, size) of what Python would import at startup: the repository's top-level and package files,
    site-packages' .pth and *customize modules. A change after a candidate ran means it wrote there."""
    import site
    import sysconfig
    dirs = [REPO_ROOT, REPO_ROOT / "ch20", REPO_ROOT / "harness"]
    dirs += [Path(p) for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                              *getattr(site, "getsitepackages", lambda: [])()}]
    state = {}
    for d in dirs:
        try:
            for entry in os.scandir(d):
                if entry.name.endswith((".py", ".pth")) or entry.name in ("sitecustomize", "usercustomize"):
                    st = entry.stat(follow_symlinks=False)
                    state[entry.path] = (st.st_mtime_ns, st.st_size)
        except OSError:
            continue
    return state


def import_path_changes(before: dict, after: dict) -> list[str]:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
