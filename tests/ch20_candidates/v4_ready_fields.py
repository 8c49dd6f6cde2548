"""Attack (v4): a field of the child's "ready" reply that the parent copies into the verdict unchecked.

The child reports uid=os.getuid() and pid=os.getpid(); the parent stores both in verdict["provenance"]
before it checks anything. ast.literal_eval accepts a dict whose keys are tuples, and json.dumps (which
writes --json, iterations.jsonl, certificates) refuses non-string keys even with default=str: the
verifier dies with a traceback after judging, and writes no verdict."""
import os

import torch
from torch import nn

os.getuid = lambda: {(1, 2): 3}   # repr() -> "{(1, 2): 3}", a literal the parent accepts


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)
