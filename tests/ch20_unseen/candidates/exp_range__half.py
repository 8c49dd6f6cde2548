"""Wrong by a little: exp computed in bfloat16 and returned as float32."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.exp(x.bfloat16()).float()
