"""Level-2 fusion: SwiGLU, silu(x @ W1^T) * (x @ W3^T), two matmuls and two elementwise ops."""
import torch
import torch.nn.functional as F
from torch import nn

FAMILY = "swiglu"
SHAPES = {"tiny": (8, 32, 48), "small": (1024, 1024, 2816), "full": (4096, 4096, 11008)}   # (tokens, dim, hidden)
DTYPES = {"small": torch.bfloat16, "full": torch.bfloat16}
INPUT_DISTRIBUTIONS = ("normal", "skewed")


class Model(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return F.silu(self.w1(x)) * self.w3(x)


def get_inputs(size="full"):
    tokens, dim, _ = SHAPES[size]
    return [torch.randn(tokens, dim)]


def get_init_inputs(size="full"):
    _, dim, hidden = SHAPES[size]
    return [dim, hidden]
