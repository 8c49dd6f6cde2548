"""Wrong: always the last dimension, whatever dim it is given."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x, scale, dim):
        return torch.softmax(x * scale, dim=-1)
