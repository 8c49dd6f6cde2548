"""Conv2d then BatchNorm2d, run as constructed (training mode, as KernelBench runs it): the batch's own
mean and variance normalize the output, not the running statistics."""
import torch
from torch import nn

batch_size = 4
in_channels = 3
out_channels = 8
height = width = 10
kernel_size = 3


class Model(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]
