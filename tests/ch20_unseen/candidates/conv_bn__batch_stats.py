"""Right (as KernelBench runs the model, in training mode): batch normalization written out with the
batch's own mean and biased variance."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        y = self.conv(x)
        mean = y.mean(dim=(0, 2, 3), keepdim=True)
        var = y.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        w = self.bn.weight[None, :, None, None]
        b = self.bn.bias[None, :, None, None]
        return (y - mean) / torch.sqrt(var + self.bn.eps) * w + b
