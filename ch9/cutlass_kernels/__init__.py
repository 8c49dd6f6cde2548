"""CUTLASS GEMMs as a Python module, built for the GPU at hand on first use (needs the nvidia-cutlass wheel)."""
from pathlib import Path

from harness.cuda_build import load_dir


def ext():
    """The compiled module: every *.cu here plus binding.cpp (see harness/cuda_build.py)."""
    return load_dir(Path(__file__).parent)
