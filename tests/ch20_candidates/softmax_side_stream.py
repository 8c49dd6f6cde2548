"""Runs its work on a side stream and returns before it finishes, behind a 1 ms spin the timer must see.

A timer that synchronises only the current stream would report the launch, not the work; the verifier's
device-wide synchronize puts the side stream's work inside every sample (GPU only).
"""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.stream = torch.cuda.Stream()

    def forward(self, x):
        out = torch.empty_like(x)
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            torch.cuda._sleep(2_000_000)
            out.copy_(torch.softmax(x, dim=-1))
        return out
