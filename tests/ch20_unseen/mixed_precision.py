"""Two inputs of two dtypes: a row sum of a float64 input and x * 2 + 1 of a float16 one. Each output keeps
its input's dtype (the verifier must not cast either input to float32)."""
import torch
from torch import nn

batch_size = 16
features = 64


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x64, x16):
        return torch.sum(x64, dim=-1), x16 * 2 + 1


def get_inputs():
    return [torch.randn(batch_size, features, dtype=torch.float64),
            torch.randn(batch_size, features, dtype=torch.float16)]


def get_init_inputs():
    return []
