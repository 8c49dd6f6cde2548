"""A row sum of float64 inputs: the output must stay float64."""
import torch
from torch import nn

batch_size = 16
features = 128


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.sum(x, dim=-1)


def get_inputs():
    return [torch.randn(batch_size, features, dtype=torch.float64)]


def get_init_inputs():
    return []
