"""LayerNorm over the last dimension, with a learned scale and shift.

The parameters are drawn at random in __init__ (a ModelNew must draw its own in the same order), so a
kernel that ignores them fails. Shifted inputs (x + 50) catch a variance computed as E[x^2] - E[x]^2.
"""
import torch
import torch.nn.functional as F
from torch import nn

FAMILY = "layernorm"
SHAPES = {"tiny": (8, 96), "small": (2048, 2048), "full": (8192, 4096)}
INPUT_DISTRIBUTIONS = ("normal", "shifted", "large", "rowwise", "edge_rows")
EPS = 1e-5


class Model(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(hidden))
        self.bias = nn.Parameter(0.1 * torch.randn(hidden))

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, EPS)


def get_inputs(size="full"):
    return [torch.randn(*SHAPES[size])]


def get_init_inputs(size="full"):
    return [SHAPES[size][-1]]


def bytes_moved(inputs):
    return 2 * inputs[0].numel() * inputs[0].element_size()
