"""Wrong indices, right values: a blocked reduction (blocks of 32) that forgets to add its block's start to
the index of the maximum it found."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        values, indices = torch.max(x, dim=self.dim)
        return values, indices % 32
