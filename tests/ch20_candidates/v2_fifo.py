"""Availability (v1 hole): named pipes where the verifier used to read results and logs, which hang a
reader forever, plus forged "all good" lines on every descriptor. The kernel itself is honest."""
import os

import torch
from torch import nn

for name in ("outputs.pt", "timed.pt", "child.log", "inputs.pt", "/tmp/outputs.pt"):
    try:
        os.mkfifo(name)
    except OSError:
        pass
for fd in range(3, 64):
    try:
        os.write(fd, b"{'nonce': '0', 'event': 'batch', 'calls': []}\n")
    except OSError:
        pass


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
