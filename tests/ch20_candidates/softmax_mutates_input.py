"""Wrong: the right answer, but it overwrites its input in place."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.softmax(x, dim=-1)
        x.zero_()
        return out
