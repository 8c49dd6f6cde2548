"""Matmul: C = A @ B for square bf16 matrices on the GPU (float32 at the CPU's tiny size).

Skewed inputs (all positive, heavy tail) make every output large and free of cancellation, so a kernel
that accumulates in bf16 drifts visibly; large-magnitude inputs are left out, because near-zero outputs
of random-sign products would test the absolute tolerance rather than the kernel.
"""
import torch
from torch import nn

FAMILY = "matmul"
SHAPES = {"tiny": (40, 56, 48), "small": (1024, 1024, 1024), "full": (4096, 4096, 4096)}   # (M, K, N)
DTYPES = {"small": torch.bfloat16, "full": torch.bfloat16}
INPUT_DISTRIBUTIONS = ("normal", "skewed")


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return torch.matmul(a, b)


def get_inputs(size="full"):
    m, k, n = SHAPES[size]
    return [torch.randn(m, k), torch.randn(k, n)]


def get_init_inputs(size="full"):
    return []


def flops(inputs):
    a, b = inputs
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


def bytes_moved(inputs):
    a, b = inputs
    return (a.numel() + b.numel() + a.shape[0] * b.shape[1]) * a.element_size()
