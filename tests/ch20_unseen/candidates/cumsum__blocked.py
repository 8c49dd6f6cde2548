"""Right: a blocked scan (prefix sums within blocks of 64, then the blocks' running offsets), in float32:
the sums are added in another order than torch's."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        x = x.movedim(self.dim, -1)
        n = x.shape[-1]
        blocks = x.reshape(*x.shape[:-1], n // 64, 64)
        inner = torch.cumsum(blocks, dim=-1)
        offsets = torch.cumsum(inner[..., -1], dim=-1) - inner[..., -1]
        return (inner + offsets[..., None]).reshape(x.shape).movedim(-1, self.dim)
