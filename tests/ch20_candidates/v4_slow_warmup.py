"""Attack (v4): slow on purpose in the warm-up round only, so the judge shrinks every later batch (it never
grows them back), then honest. Short batches make the per-batch costs (request, reply, thaw, wake-up
from SIGSTOP) a large share of each timing; the question is whether that share favours either side."""
import time

import torch
from torch import nn

_calls = [0]
WARM_UP_CALLS = 2 * 5   # the warm-up round: two candidate batches of n_full // 16 calls (about 5 here)


class ModelNew(nn.Module):
    def forward(self, x):
        _calls[0] += 1
        if _calls[0] <= WARM_UP_CALLS:
            time.sleep(0.05)
        return torch.softmax(x, dim=-1)
