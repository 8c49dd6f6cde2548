"""Cheat (or accident): processes without bound at import (a fork bomb, bounded here to 3000 sleepers so that a
missing cap cannot take the test machine down; each exits within 20 s)."""
import os
import time

import torch
from torch import nn

for _ in range(3000):
    if os.fork() == 0:
        time.sleep(20)
        os._exit(0)


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
