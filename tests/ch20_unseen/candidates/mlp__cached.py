"""Wrong: computes the first call's answer and returns it for every call."""
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, output_size))
        self.cached = None

    def forward(self, x):
        if self.cached is None:
            self.cached = self.net(x).clone()
        return self.cached
