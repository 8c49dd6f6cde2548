"""Level-2 fusion: LayerNorm(x + residual), returning the normalised sum and the sum itself.

Two outputs, as in a transformer block that keeps the residual stream: a candidate must return the
same tuple, with both parts right.
"""
import torch
import torch.nn.functional as F
from torch import nn

FAMILY = "fused_norm"
SHAPES = {"tiny": (8, 96), "small": (2048, 2048), "full": (8192, 4096)}
INPUT_DISTRIBUTIONS = ("normal", "shifted", "rowwise", "edge_rows")
EPS = 1e-5


class Model(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(hidden))
        self.bias = nn.Parameter(0.1 * torch.randn(hidden))

    def forward(self, x, residual):
        h = x + residual
        return F.layer_norm(h, (h.shape[-1],), self.weight, self.bias, EPS), h


def get_inputs(size="full"):
    return [torch.randn(*SHAPES[size]), torch.randn(*SHAPES[size])]


def get_init_inputs(size="full"):
    return [SHAPES[size][-1]]


def bytes_moved(inputs):
    return 4 * inputs[0].numel() * inputs[0].element_size()
