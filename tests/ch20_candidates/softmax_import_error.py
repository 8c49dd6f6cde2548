"""Does not import: a module that does not exist."""
import torch_kernels_that_do_not_exist  # noqa: F401
from torch import nn


class ModelNew(nn.Module):
    def forward(self, x):
        return x
