#!/usr/bin/env python3
"""The profiler's old command line, kept working: the same as `python -m profiling ...` (profiling/cli.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: `profiling` is beside scripts/

from profiling.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
