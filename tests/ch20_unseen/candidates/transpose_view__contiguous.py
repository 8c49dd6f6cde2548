"""Right: the transpose as a new contiguous tensor."""
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        return x.transpose(1, 2).contiguous()
