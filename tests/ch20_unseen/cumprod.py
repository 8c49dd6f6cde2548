"""Prefix products of uniform [0, 1) inputs (KernelBench's draw): values decay by orders of magnitude along
the row. No INPUT_DISTRIBUTIONS: x * 100 ("large") overflows the products."""
import torch
from torch import nn

batch_size = 8
length = 128


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.cumprod(x, dim=self.dim)


def get_inputs():
    return [torch.rand(batch_size, length)]


def get_init_inputs():
    return [1]
