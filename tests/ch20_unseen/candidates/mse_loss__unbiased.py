"""Wrong by a little: divides by n - 1 instead of n."""
from torch import nn


class ModelNew(nn.Module):
    def forward(self, predictions, targets):
        return ((predictions - targets) ** 2).sum() / (predictions.numel() - 1)
