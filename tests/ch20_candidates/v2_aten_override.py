"""Cheat (v1 hole): override an ATen operator through torch.library, below torch-function and dispatch
modes, so the output is computed when the verifier reads it (here: aten::detach, which every read of an
output goes through) rather than inside the call."""
import torch
from torch import nn

PENDING = {}
_lib = torch.library.Library("aten", "IMPL")


def _detach(x):
    src = PENDING.pop(x.data_ptr(), None)
    if src is not None:
        with torch._C._AutoDispatchBelowAutograd():
            x.copy_(torch.softmax(src, dim=-1))
    return torch.ops.aten.alias.default(x)


_lib.impl("detach", _detach, "CPU")


class ModelNew(nn.Module):
    def forward(self, x):
        out = torch.empty_like(x)
        PENDING[out.data_ptr()] = x
        return out
