"""Cheat (v1 hole): read every trial's inputs, or the reference's answers, from files the verifier left
where the child can see them (its working directory, /tmp, other processes' directories and open files),
and return precomputed answers. It returns zeros when it finds nothing, so it is accepted only if it found
something to read."""
import glob
import os

import torch
from torch import nn

FOUND = []
for pattern in ("*.pt", "/tmp/**/*.pt", "/tmp/ch20-*/**", "/dev/shm/*", "/proc/[0-9]*/cwd/*.pt", "/proc/[0-9]*/fd/*"):
    for path in glob.glob(pattern, recursive=True):
        try:
            if os.path.isfile(path) and os.path.getsize(path) > 0:
                FOUND.append(torch.load(path, weights_only=True))
        except Exception:  # noqa: BLE001
            continue


class ModelNew(nn.Module):
    def forward(self, x):
        for blob in FOUND:   # whatever was found, try it as the answer source
            if isinstance(blob, dict):
                return torch.softmax(x, dim=-1)
        return torch.zeros_like(x)
