"""A one-layer LSTM returning (output, (h_n, c_n)): a nested tuple of three tensors."""
import torch
from torch import nn

batch_size = 4
seq_len = 6
input_size = 12
hidden_size = 16


class Model(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(self, x):
        return self.lstm(x)


def get_inputs():
    return [torch.randn(batch_size, seq_len, input_size)]


def get_init_inputs():
    return [input_size, hidden_size]
