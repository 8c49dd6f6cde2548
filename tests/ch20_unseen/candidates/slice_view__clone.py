"""Right: the first k columns copied, not a view."""
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x[:, :self.k].clone()
