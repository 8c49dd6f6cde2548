"""Wrong: products accumulated in float16 (underflow to 0 far too early), returned as float32."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.cumprod(x.half(), dim=self.dim).float()
