"""Wrong by a little: accumulates in float32, returns float64 (errors of 1e-6, over float64's tolerance)."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.sum(x.float(), dim=-1).double()
