"""Cheat (or accident): host memory without bound, while the reference is still calibrating; the kernel's OOM
killer would pick a victim, perhaps the verifier. 4 GiB in 100 MiB steps, each written (resident)."""
import time

import torch
from torch import nn

_hoard = []
for _ in range(40):
    _hoard.append(b"\1" * (100 << 20))
    time.sleep(0.02)


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
