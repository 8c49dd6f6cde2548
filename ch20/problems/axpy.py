"""Elementwise: alpha * x + y.

The simplest memory-bound problem: one read of each input, one write, nothing to reuse. A kernel can
only match the copy rate, which makes it a check on the verifier's above-peak flag as much as a target.
"""
import torch
from torch import nn

FAMILY = "elementwise"
SHAPES = {"tiny": (1000,), "small": (1 << 20,), "full": (1 << 26,)}
ALPHA = 2.5


class Model(nn.Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x, y):
        return self.alpha * x + y


def get_inputs(size="full"):
    return [torch.randn(*SHAPES[size]), torch.randn(*SHAPES[size])]


def get_init_inputs(size="full"):
    return [ALPHA]


def bytes_moved(inputs):
    return 3 * inputs[0].numel() * inputs[0].element_size()
