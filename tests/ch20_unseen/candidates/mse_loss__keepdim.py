"""Wrong shape: the right value, as a (1, 1) tensor instead of a 0-d one."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, predictions, targets):
        return torch.mean((predictions - targets) ** 2, dim=(0, 1), keepdim=True)
