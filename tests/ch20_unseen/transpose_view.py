"""A transpose returned as a view: a non-contiguous output."""
import torch
from torch import nn

batch_size = 4
rows = 12
cols = 20


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x.transpose(1, 2)


def get_inputs():
    return [torch.randn(batch_size, rows, cols)]


def get_init_inputs():
    return []
