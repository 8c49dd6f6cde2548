"""This chapter's CUDA kernels as a Python module, built for the GPU at hand on first use (then cached)."""
from pathlib import Path

from harness.cuda_build import load_dir


def ext():
    """The compiled module: every *.cu here plus binding.cpp (see harness/cuda_build.py)."""
    return load_dir(Path(__file__).parent)
