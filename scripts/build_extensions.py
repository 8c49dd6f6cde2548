"""Build every CUDA extension (the chN/.../binding.cpp folders) for this machine's GPU, ahead of time.

    python scripts/build_extensions.py            # all of them, a few in parallel
    python scripts/build_extensions.py ch7 ch8    # only these chapters (others named are ignored)
    python scripts/build_extensions.py --list

Builds are cached in build/extensions/ (see harness/cuda_build.py), so a second run only checks them.
A failed build prints its whole compiler log. Without a CUDA GPU there is nothing to build: one line,
exit 0. Exit 1 when a build fails or the CUDA toolchain is missing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from harness.cuda_build import CudaBuildError, _check_toolchain, extension_dirs, extension_name  # noqa: E402
from harness.process import child_env  # noqa: E402

# Each build runs in its own process: torch's loader is not made for concurrent builds in one process.
CHILD = """
import sys
from harness.cuda_build import CudaBuildError, load_dir
try:
    load_dir(sys.argv[1])
except CudaBuildError as exc:
    print(exc.__cause__ or exc)
    print(exc)
    sys.exit(1)
"""


def build_one(folder: Path, env: dict) -> tuple[int, str, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip(), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter folders to build (default: all)")
    parser.add_argument("--list", action="store_true", help="list the extensions and exit")
    parser.add_argument("--jobs", type=int, default=3, help="extensions built at once (default 3)")
    parser.add_argument("--verbose", action="store_true", help="show the compiler commands")
    args = parser.parse_args(argv)

    folders = extension_dirs()
    if args.chapters:  # chapters or example ids (ch7/transpose): only the chapter part matters
        wanted = {Path(c).parts[0] for c in args.chapters if c.strip("/")}
        folders = [f for f in folders if f.relative_to(REPO_ROOT).parts[0] in wanted]
        if not folders:
            print(f"build_extensions: nothing to build, no CUDA extensions in {', '.join(sorted(wanted))}")
            return 0
    if args.list:
        for f in folders:
            print(f"{extension_name(f):28s} {f.relative_to(REPO_ROOT)}")
        return 0

    import torch
    if not torch.cuda.is_available():
        print("build_extensions: skipped, no CUDA GPU visible (the kernels are built on a GPU machine)")
        return 0
    try:
        _check_toolchain()
    except CudaBuildError as exc:
        print(f"build_extensions: {exc}", file=sys.stderr)
        return 1

    jobs = max(1, min(args.jobs, len(folders)))
    env = child_env()
    env.setdefault("MAX_JOBS", str(max(2, (os.cpu_count() or 2) // jobs)))  # ninja's parallelism per build
    if args.verbose:
        env["AISP_BUILD_VERBOSE"] = "1"
    major, minor = torch.cuda.get_device_capability()
    print(f"build_extensions: {len(folders)} extension(s) for {torch.cuda.get_device_name()} (sm_{major}{minor}), "
          f"{jobs} at a time")
    failed = 0
    with ThreadPoolExecutor(jobs) as pool:
        for folder, (rc, log, seconds) in zip(folders, pool.map(lambda f: build_one(f, env), folders), strict=True):
            status = "ok" if rc == 0 else "FAILED"
            print(f"  {status:6s} {extension_name(folder):28s} {seconds:6.1f} s")
            if rc != 0 or args.verbose:
                print("\n".join("      " + line for line in log.splitlines()))
            failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
