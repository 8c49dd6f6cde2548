"""A level-2-style fused chain: conv2d, an added bias parameter, BatchNorm2d, ReLU, then GroupNorm.

Run as constructed, in training mode, as KernelBench runs it: BatchNorm normalizes by the batch's own mean
and variance, not by its running statistics (eval mode's).
"""
import torch
from torch import nn

batch_size = 4
in_channels = 3
out_channels = 8
height = width = 10
kernel_size = 3
num_groups = 4
bias_shape = (out_channels, 1, 1)


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, num_groups, bias_shape):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.bias = nn.Parameter(torch.randn(bias_shape) * 0.1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.group_norm = nn.GroupNorm(num_groups, out_channels)

    def forward(self, x):
        x = self.bn(self.conv(x) + self.bias)
        return self.group_norm(torch.relu(x))


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size, num_groups, bias_shape]
