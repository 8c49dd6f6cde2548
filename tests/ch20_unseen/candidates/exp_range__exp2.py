"""Right: exp(x) as exp2(x log2 e), a few ulps from torch.exp."""
import math

import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.exp2(x * math.log2(math.e))
