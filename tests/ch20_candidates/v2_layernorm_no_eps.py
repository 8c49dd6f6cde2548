"""Coverage gap (v1 hole), for ch20/problems/layernorm.py: a layernorm without eps, NaN on a constant row."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(hidden))
        self.bias = nn.Parameter(0.1 * torch.randn(hidden))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, unbiased=False, keepdim=True)
        return (x - mean) / var.sqrt() * self.weight + self.bias
