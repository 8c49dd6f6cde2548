"""Cheat: replaces the child's Trusted.measure (a class attribute of __main__) with one that divides
the samples by 5; warm-up and loop totals stay true."""
import sys

import torch
from torch import nn

_T = sys.modules["__main__"].Trusted
_measure = _T.measure


def measure(self, fn, cfg, should_stop):
    raw = _measure(self, fn, cfg, should_stop)
    raw["device_s"] = [s / 5 for s in raw["device_s"]]
    raw["wall_s"] = [s / 5 for s in raw["wall_s"]]
    return raw


_T.measure = measure


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
