"""RMSNorm over the last dimension, with a learned scale (random in __init__)."""
import torch
from torch import nn

FAMILY = "rmsnorm"
SHAPES = {"tiny": (8, 96), "small": (2048, 2048), "full": (8192, 4096)}
INPUT_DISTRIBUTIONS = ("normal", "large", "shifted", "rowwise", "edge_rows")
EPS = 1e-6


class Model(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(hidden))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + EPS) * self.weight


def get_inputs(size="full"):
    return [torch.randn(*SHAPES[size])]


def get_init_inputs(size="full"):
    return [SHAPES[size][-1]]


def bytes_moved(inputs):
    return 2 * inputs[0].numel() * inputs[0].element_size()
