"""Right: the same values without touching the input."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, shift):
        super().__init__()
        self.shift = shift

    def forward(self, x):
        return torch.relu(x + self.shift)
