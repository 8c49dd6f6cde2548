"""Hangs: never returns."""
import time

from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        while True:
            time.sleep(1)
