"""nn.Linear built from get_init_inputs (in and out features): a model with parameters."""
import torch
from torch import nn

batch_size = 16
in_features = 48
out_features = 40


class Model(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.linear(x)


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]
