"""Activation fusion: GELU(x + bias), two elementwise passes that one kernel can do in one."""
import torch
import torch.nn.functional as F
from torch import nn

FAMILY = "activation_fusion"
SHAPES = {"tiny": (16, 64), "small": (4096, 4096), "full": (16384, 4096)}
INPUT_DISTRIBUTIONS = ("normal", "large", "sparse")


class Model(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(hidden))

    def forward(self, x):
        return F.gelu(x + self.bias)


def get_inputs(size="full"):
    return [torch.randn(*SHAPES[size])]


def get_init_inputs(size="full"):
    return [SHAPES[size][-1]]


def bytes_moved(inputs):
    return 2 * inputs[0].numel() * inputs[0].element_size()
