"""Wrong: right values, but float64 instead of the input's dtype."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x.double(), dim=-1)
