"""Cheat (the v1 "rebinds the child's clock" class, for v2): rewrite the child's own bookkeeping so the
timed batch skips the work: it replaces the digest function the child bound with one that returns the
digests of the zero tensor, and returns zeros."""
import ch20.digest as _digest   # the very module the child's runner digests with
import torch
from torch import nn

_real = _digest.digests
_digest.digests = lambda t, key, method, first_chunk=0: _real(torch.zeros_like(t), key, method, first_chunk)


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)
