"""Cheat (v1 hole): cache answers keyed on the data pointer and a few sampled values; a content check
that samples the same few values misses it."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.cache = {}

    def forward(self, x):
        key = (x.data_ptr(), tuple(x.shape), tuple(x.reshape(-1)[:4].tolist()))
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = torch.softmax(x, dim=-1)
        return hit
