"""Prefix sums and prefix products along a row of uniform [0, 1) inputs (KernelBench's draw): the products
decay by orders of magnitude along the row, the sums grow; a reordered scan's error grows with the length.

No INPUT_DISTRIBUTIONS, as in KernelBench's files: x * 100 ("large") overflows the products, so the
verifier leaves that default out.
"""
import torch
from torch import nn

batch_size = 8
length = 128


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.cumsum(x, dim=self.dim), torch.cumprod(x, dim=self.dim)


def get_inputs():
    return [torch.rand(batch_size, length)]


def get_init_inputs():
    return [1]
