"""Wrong dtype: computed and returned in float64."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, logits, targets):
        return torch.nn.functional.cross_entropy(logits.double(), targets)
