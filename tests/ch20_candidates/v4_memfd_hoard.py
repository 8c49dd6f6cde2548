"""Attack (v4): host memory the cap does not see. The watcher sums the resident set (statm, then Pss) of the
candidate's processes; pages of a memfd that is written with write() and never mapped belong to no
process's resident set, and the memfd lives on the kernel's internal shmem mount, not on the size-limited
private tmpfs. 1 GiB here (the red team's bound); nothing stops 100 GiB: the OOM killer then picks a
victim among processes that do have a resident set (the verifier, the reference)."""
import os

import torch
from torch import nn

HOARD_BYTES = 1 << 30
_fd = os.memfd_create("not-resident")
_block = b"\1" * (64 << 20)
for _ in range(HOARD_BYTES // len(_block)):
    os.write(_fd, _block)
del _block


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
