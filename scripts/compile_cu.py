"""Compile every chapter .cu file with plain nvcc for sm_80, sm_90 and sm_100 (what CI checks).

    python scripts/compile_cu.py                  # every ch*/**/*.cu
    python scripts/compile_cu.py ch7 ch8/kernels/ilp.cu --arch sm_90

No GPU and no torch build are needed: the .cu files include CUDA headers only. Files marked
`// aisp: arch sm_90a` also get that target; files with an AISP_STANDALONE main are compiled with
-DAISP_STANDALONE. Objects go to a temporary folder and are thrown away. Exit 1 if any file fails.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from harness.cuda_build import CI_ARCHS, CudaBuildError, compile_cu, find_nvcc  # noqa: E402


def cu_files(targets: list[str]) -> list[Path]:
    if not targets:
        return sorted(REPO_ROOT.glob("ch*/**/*.cu"))
    files = []
    for t in targets:
        p = Path(t) if Path(t).is_absolute() else REPO_ROOT / t
        if p.is_dir():
            files += sorted(p.glob("**/*.cu"))
        elif p.suffix == ".cu" and p.is_file():
            files.append(p)
        else:
            raise SystemExit(f"compile_cu: {t} is neither a .cu file nor a folder")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=".cu files or folders (default: every ch*/**/*.cu)")
    parser.add_argument("--arch", action="append", help=f"target, repeatable (default: {' '.join(CI_ARCHS)})")
    args = parser.parse_args(argv)
    nvcc = find_nvcc()
    if nvcc is None:
        print("compile_cu: nvcc not found (set CUDA_HOME, or put nvcc on PATH)", file=sys.stderr)
        return 1
    archs = tuple(args.arch or CI_ARCHS)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in cu_files(args.targets):
            start = time.perf_counter()
            try:
                compile_cu(path, Path(tmp), archs, nvcc)
                print(f"ok      {path.relative_to(REPO_ROOT)}  ({time.perf_counter() - start:.1f} s)")
            except CudaBuildError as exc:
                failed += 1
                print(f"FAILED  {path.relative_to(REPO_ROOT)}\n{exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
