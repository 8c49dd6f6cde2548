"""Right (in training mode, as the reference runs): batch normalization written out with the batch's own
mean and biased variance, the rest through the functional ops."""
import torch
import torch.nn.functional as F
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, num_groups, bias_shape):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.bias = nn.Parameter(torch.randn(bias_shape) * 0.1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.group_norm = nn.GroupNorm(num_groups, out_channels)

    def forward(self, x):
        y = F.conv2d(x, self.conv.weight, self.conv.bias) + self.bias
        mean = y.mean(dim=(0, 2, 3), keepdim=True)
        var = y.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        y = (y - mean) / torch.sqrt(var + self.bn.eps) * self.bn.weight[:, None, None] + self.bn.bias[:, None, None]
        g = self.group_norm
        return F.group_norm(F.relu(y), g.num_groups, g.weight, g.bias, g.eps)
