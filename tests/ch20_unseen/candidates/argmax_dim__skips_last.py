"""Wrong: an off-by-one bound that never looks at the last element of the dimension."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.argmax(x.narrow(self.dim, 0, x.shape[self.dim] - 1), dim=self.dim)
