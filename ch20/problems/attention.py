"""Attention: causal scaled-dot-product attention over (batch, heads, seq, head_dim)."""
import torch
import torch.nn.functional as F
from torch import nn

FAMILY = "attention"
SHAPES = {"tiny": (1, 2, 16, 16), "small": (2, 8, 1024, 64), "full": (4, 16, 2048, 64)}
DTYPES = {"small": torch.bfloat16, "full": torch.bfloat16}
INPUT_DISTRIBUTIONS = ("normal", "skewed")


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def get_inputs(size="full"):
    return [torch.randn(*SHAPES[size]) for _ in range(3)]


def get_init_inputs(size="full"):
    return []


def flops(inputs):
    b, h, s, d = inputs[0].shape
    return 2 * 2 * b * h * s * s * d // 2   # two matmuls, half of them masked out


def bytes_moved(inputs):
    return 4 * inputs[0].numel() * inputs[0].element_size()
