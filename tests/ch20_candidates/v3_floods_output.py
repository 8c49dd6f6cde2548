"""Cheat (or accident): gigabytes to stdout; the verifier keeps a child's output in memory of its own."""
import sys

import torch
from torch import nn

for _ in range(400):   # 400 MiB, in a fraction of a second
    sys.stdout.write("x" * (1 << 20))


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
