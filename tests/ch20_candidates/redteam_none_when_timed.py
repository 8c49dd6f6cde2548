"""Cheat: returns None once an input object is seen a third time (the timing loop reuses its sets);
the verifier used to skip the timed-output check for None."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = {}

    def forward(self, x):
        n = self.seen[id(x)] = self.seen.get(id(x), 0) + 1
        if n > 2:
            return None
        return torch.softmax(x, dim=-1)
