"""State that changes from call to call: the output depends on how many calls came before."""
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls


def get_inputs():
    return [torch.randn(16, 64)]


def get_init_inputs():
    return []
