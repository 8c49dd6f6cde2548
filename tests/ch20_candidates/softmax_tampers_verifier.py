"""Cheat: rebinds the clock the verifier's own child captured so that 90% of each call goes unseen.

The child's clock is then a lie, but the parent times each timed phase with its own clock and rejects a
child whose account of the phase disagrees.
"""
import sys
import time

import torch
from torch import nn

_child = sys.modules["__main__"]
_real = _child._clock
_hidden = [0.0]
_child._clock = lambda: _real() - _hidden[0]


class ModelNew(nn.Module):
    def forward(self, x):
        t0 = _real()
        time.sleep(0.001)
        out = torch.softmax(x, dim=-1)
        _hidden[0] += 0.9 * (_real() - t0)
        return out
