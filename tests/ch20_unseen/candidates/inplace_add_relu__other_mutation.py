"""Right output, but it leaves the input in a state neither the draw nor the reference leaves it in."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, shift):
        super().__init__()
        self.shift = shift

    def forward(self, x):
        out = torch.relu(x + self.shift)
        x.zero_()
        return out
