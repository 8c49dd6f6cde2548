"""x > 0: a bool output. The sparse distribution makes half the elements exactly 0, where > and >= differ."""
import torch
from torch import nn

INPUT_DISTRIBUTIONS = ("normal", "sparse")
batch_size = 16
features = 64


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x > 0


def get_inputs():
    return [torch.randn(batch_size, features)]


def get_init_inputs():
    return []
