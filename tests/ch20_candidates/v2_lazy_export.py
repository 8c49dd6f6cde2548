"""Cheat (v1 hole): return garbage at once (the timed call is nearly free), and compute the real answer
only when the verifier copies the output out, after its timer stopped, by patching the child's export."""
import sys

import torch
from torch import nn

_runner = sys.modules["ch20._child"].Runner
_export = _runner.export


def export(self, items, fd):
    for batch, j, _ in items:
        xs, tensors = self.batches[batch][j]
        tensors[0].copy_(torch.softmax(xs[0], dim=-1))   # the right answer, computed now
    return _export(self, items, fd)


_runner.export = export


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.empty_like(x)
