"""Reduction: the sum of each row of a (rows, cols) matrix.

Shifted inputs (x + 50) make the sums large, so a low-precision accumulator shows. Large-magnitude
inputs are left out: with random signs a row's sum can land near zero, where the absolute tolerance,
not the kernel, would decide.
"""
import torch
from torch import nn

FAMILY = "reduction"
SHAPES = {"tiny": (8, 100), "small": (1024, 4096), "full": (8192, 8192)}
INPUT_DISTRIBUTIONS = ("normal", "shifted", "skewed")
# Summation order differs between kernels: float32 sums of 8192 terms near 50 differ by more than 1e-4.
TOLERANCE = (1e-4, 1e-3)


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x.sum(dim=-1)


def get_inputs(size="full"):
    return [torch.randn(*SHAPES[size])]


def get_init_inputs(size="full"):
    return []


def bytes_moved(inputs):
    x = inputs[0]
    return (x.numel() + x.shape[0]) * x.element_size()
