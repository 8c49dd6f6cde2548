"""Probe: a double-forked setsid daemon, outside the child's process group, that would outlive the
verification (and could load the CPU while a later reference is timed)."""
import os
import time

import torch
from torch import nn

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        try:   # in a private /tmp (mount namespace) the test's file is out of reach: nothing to report then
            with open(os.environ.get("CH20_REDTEAM_PIDFILE", os.devnull), "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass
        time.sleep(20)
    os._exit(0)


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
