"""Availability (v1 hole): a well-formed reply with fields missing (v1's verify() died with a KeyError).
It patches the child's channel to drop the digests from every batch reply."""
import sys

import torch
from torch import nn

_chan = sys.modules["ch20._child"].Channel
_send = _chan.send


def send(self, event, **fields):
    if event == "batch":
        for call in fields.get("calls", []):
            call.pop("digests", None)
    return _send(self, event, **fields)


_chan.send = send


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
