"""One GPU thread doing all the work vs one thread per element (a teaching example).

The first kernel adds two vectors in a single loop on a single thread: the GPU used as one slow,
in-order core, waiting on every load in turn. The second launches one thread per element, so tens of
thousands of loads are in flight at once. The one-thread kernel is a deliberately naive teaching
baseline, kept out of headline figures; `torch_add` is PyTorch's own `a + b`, for reference.

Bound: the size is kept small so that the one-thread loop finishes: full size moves 3 MiB, under a
microsecond at the copy bandwidth, so the per-element kernel's time is the launch and the ramp-up of
one short kernel (a few microseconds), not memory bandwidth. `saxpy_vectorized.py` shows a vector
kernel at a size where bandwidth is what counts.
"""
import torch

from ch6.kernels import ext
from harness import Example, Requires, Variant, main

N = {"tiny": 1 << 10, "small": 1 << 14, "full": 1 << 18}  # the one-thread loop is slow: keep it short


def setup(size, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return {"a": torch.randn(N[size], device=device, generator=g), "b": torch.randn(N[size], device=device, generator=g)}


def one_thread(x):
    return ext().add_one_thread(x["a"], x["b"])


def one_thread_per_element(x):
    return ext().add_per_element(x["a"], x["b"])


def torch_add(x):
    return x["a"] + x["b"]


EXAMPLE = Example(
    title="Vector add: one thread vs one thread per element",
    setup=setup,
    baseline=one_thread,
    baseline_name="one_thread",
    teaching_baseline=True,
    optimized={"one_thread_per_element": Variant(
        one_thread_per_element,
        note="3 MiB, the size the one-thread baseline can finish: launch-bound, not bandwidth-bound")},
    references={"torch_add": torch_add},
    bytes_moved=lambda x: 3 * 4 * x["a"].numel(),  # read a and b, write out
    flops=lambda x: x["a"].numel(),
    flops_dtype="fp32",
    requires=Requires(cuda=True),  # the point is the CUDA kernels; there is no CPU version of them
)

if __name__ == "__main__":
    main(EXAMPLE)
