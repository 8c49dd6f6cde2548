"""Cheat: computes the right answer itself, but makes torch.softmax (the reference) return zeros."""
import torch
import torch.nn.functional as F
from torch import nn

_softmax = torch.softmax
torch.softmax = lambda x, dim=None, **k: torch.zeros_like(x)
F.softmax = torch.softmax
torch.Tensor.softmax = lambda self, dim=None, **k: torch.zeros_like(self)


class ModelNew(nn.Module):
    def forward(self, x):
        return _softmax(x, dim=-1)
