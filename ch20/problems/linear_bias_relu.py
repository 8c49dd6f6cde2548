"""Matmul + bias + activation: ReLU(x @ W^T + b), the epilogue a fused kernel applies in registers."""
import torch
from torch import nn

FAMILY = "matmul_bias_relu"
SHAPES = {"tiny": (40, 56, 48), "small": (1024, 1024, 1024), "full": (4096, 4096, 4096)}   # (tokens, in, out)
DTYPES = {"small": torch.bfloat16, "full": torch.bfloat16}
INPUT_DISTRIBUTIONS = ("normal", "skewed")


class Model(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return torch.relu(self.linear(x))


def get_inputs(size="full"):
    tokens, d_in, _ = SHAPES[size]
    return [torch.randn(tokens, d_in)]


def get_init_inputs(size="full"):
    _, d_in, d_out = SHAPES[size]
    return [d_in, d_out]


def flops(inputs):
    tokens, d_in = inputs[0].shape
    d_out = next(s[2] for s in SHAPES.values() if s[:2] == (tokens, d_in))
    return 2 * tokens * d_in * d_out
