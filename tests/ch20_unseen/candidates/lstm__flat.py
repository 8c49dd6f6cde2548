"""Wrong structure: (output, h_n, c_n) instead of (output, (h_n, c_n))."""
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return out, h, c
