"""Cheat: a wrong (identity) kernel, with torch.save patched so the files the child writes carry the
right answers, computed from the inputs.pt in its working directory."""
import torch
from torch import nn

_save = torch.save


def _fix(obj):
    if isinstance(obj, torch.Tensor):
        return torch.softmax(obj, dim=-1)
    if isinstance(obj, dict):
        return {k: (_fix(v) if k in ("trials", "timed", "before", "after", "tensors") else v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fix(v) for v in obj]
    return obj


def save(obj, f, *a, **k):
    return _save(_fix(obj), f, *a, **k)


torch.save = save


class ModelNew(nn.Module):
    def forward(self, x):
        return x
