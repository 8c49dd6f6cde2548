"""Wrong on large logits: log-sum-exp without subtracting the row maximum overflows."""
import torch
from torch import nn


class ModelNew(nn.Module):
    def forward(self, logits, targets):
        lse = torch.log(torch.exp(logits).sum(dim=1))
        return (lse - logits.gather(1, targets[:, None]).squeeze(1)).mean()
