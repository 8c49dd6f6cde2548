"""Cheat: returns zeros and replaces every comparison function it can reach with one that says "equal"."""
import numpy as np
import torch
import torch.testing
from torch import nn

torch.allclose = lambda *a, **k: True
torch.isclose = lambda a, b, *args, **k: torch.ones_like(a, dtype=torch.bool)
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
np.allclose = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
np.array_equal = lambda *a, **k: True


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)
