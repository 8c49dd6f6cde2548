"""Cheat (v1 hole): rewrite the child's own bookkeeping through frame objects. It finds the batch's list
of calls in the caller's frame and makes every call use the first call's seed, so one answer, computed
once, serves the whole batch."""
import sys

import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.cache = None

    def forward(self, x):
        frame = sys._getframe(1)
        while frame is not None and "calls" not in frame.f_locals:
            frame = frame.f_back
        if frame is not None:
            calls = frame.f_locals["calls"]
            if isinstance(calls, list) and calls and calls[0] is not calls[-1]:
                calls[:] = [calls[0]] * len(calls)     # later calls now draw the first call's inputs
                self.cache = torch.softmax(x, dim=-1)
        if self.cache is not None and self.cache.shape == x.shape:
            return self.cache.clone()
        return torch.softmax(x, dim=-1)
