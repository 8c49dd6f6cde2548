"""Where this chapter's Triton kernels run: compiled for the GPU, or in Triton's interpreter without one.

Triton decides at `@triton.jit` time whether a kernel is compiled or interpreted (TRITON_INTERPRET=1),
so every example imports this module before it defines a kernel. On a machine without CUDA the
interpreter runs the kernels on CPU tensors, block by block in NumPy: slow, but the same program, so
the tiny-size CPU run verifies the kernels themselves, not a stand-in.
"""
import os
import sys

import torch

from harness import Requires

# `import triton` builds its language helpers (tl.max, ...) compiled or interpreted as the variable says
# then: it can only be set before triton is first imported; after that, the kernels need a GPU here.
if not torch.cuda.is_available() and "triton" not in sys.modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# A Triton variant runs wherever its kernels can: the interpreter anywhere, compiled code only on a GPU.
TRITON = Requires(packages=("triton",)) if INTERPRET else Requires(cuda=True, packages=("triton",))


def triton_requires(min_capability=None) -> Requires:
    """TRITON, plus a minimum compute capability for compiled code (the interpreter has no such limit)."""
    if INTERPRET or min_capability is None:
        return TRITON
    return Requires(cuda=True, min_capability=min_capability, packages=("triton",))
