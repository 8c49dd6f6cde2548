"""Children in isolation, and files that are never half written.

Every child the harness starts (an example, a profiler run, a build, a candidate kernel) runs with this
repository importable, in a session of its own, so that on a timeout its process group, and nothing
else, is killed. Result files are written whole or not at all, so a run killed halfway keeps what it had.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from harness.device import REPO_ROOT


def child_env(**extra: str) -> dict[str, str]:
    """This environment, with the repository on PYTHONPATH and Python's output unbuffered."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def run_isolated(cmd: list[str], *, timeout: float, stdout, stderr=subprocess.STDOUT,
                 env: dict[str, str] | None = None) -> int | None:
    """Run `cmd` from the repository root; its exit code, or None when it ran past `timeout` and was killed.

    On Ctrl-C (or any exception while waiting) the child's process group is killed before the exception goes on,
    so nothing is left running behind the caller.
    """
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=child_env(**(env or {})), stdout=stdout, stderr=stderr,
                            start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None
    except BaseException:
        _kill_group(proc)
        raise


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's process group, nothing else
    except ProcessLookupError:
        pass
    proc.wait()


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
