"""nn.Dropout in its default training mode: the reference differs from itself on the same inputs."""
import torch
from torch import nn

batch_size = 16
features = 64


class Model(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.dropout = nn.Dropout(p)

    def forward(self, x):
        return self.dropout(x)


def get_inputs():
    return [torch.randn(batch_size, features)]


def get_init_inputs():
    return [0.5]
