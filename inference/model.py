"""A Llama-architecture decoder in plain PyTorch: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU.

Random weights at real sizes (nothing is downloaded): `CONFIGS["1b"]` and `CONFIGS["8b"]` have the shapes of
Llama 3.2 1B and Llama 3.1 8B; `"tiny"` runs on a CPU in milliseconds. The layer names (wq, wk, wv, wo, w1, w2,
w3) are the ones the tensor-parallel plans of `torch.distributed.tensor.parallel` are usually written against.

    model = Decoder(CONFIGS["tiny"])
    logits = model(tokens)                                   # training / scoring: causal over the whole sequence
    cache = model.new_cache(batch=2, max_seq=64)
    logits = model(prompt, cache=cache, start_pos=0)         # prefill
    logits = model(next_tok, cache=cache, start_pos=len_p)   # one decode step
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Config:
    vocab: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    max_seq: int = 4096
    rope_theta: float = 500000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def n_params(self) -> int:
        """Parameter count (untied embedding and output head, as in the 8B config)."""
        attn = self.dim * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
        mlp = 3 * self.dim * self.ffn_dim
        return self.n_layers * (attn + mlp + 2 * self.dim) + 2 * self.vocab * self.dim + self.dim


CONFIGS: dict[str, Config] = {
    "tiny": Config(vocab=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128, max_seq=256),
    "small": Config(vocab=32000, dim=768, n_layers=12, n_heads=12, n_kv_heads=4, ffn_dim=2048, max_seq=2048),
    "1b": Config(vocab=128256, dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, ffn_dim=8192),
    "8b": Config(vocab=128256, dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, ffn_dim=14336),
}


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 (as Llama does), scale in the input's dtype; F.rms_norm is one call (a fused kernel on
        # CUDA) where the written-out formula is five
        return F.rms_norm(x.float(), x.shape[-1:], eps=self.eps).to(x.dtype) * self.weight


def rope_tables(cfg: Config, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (max_seq, head_dim), in the rotate-half layout."""
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, device=device).float() / cfg.head_dim)
    angles = torch.outer(torch.arange(cfg.max_seq, device=device).float(), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (batch, heads, seq, head_dim); cos/sin: (seq, head_dim)."""
    x32 = x.float()
    x1, x2 = x32.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return torch.addcmul(x32 * cos, rotated, sin).to(x.dtype)  # x cos + rotated sin: 6 kernels, not 8


class KVCache:
    """A contiguous cache: (batch, kv_heads, max_seq, head_dim) per layer for keys and for values."""

    def __init__(self, cfg: Config, batch: int, max_seq: int, dtype: torch.dtype, device):
        shape = (cfg.n_layers, batch, cfg.n_kv_heads, max_seq, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    @property
    def max_seq(self) -> int:
        return self.k.shape[3]


class Attention(nn.Module):
    def __init__(self, cfg: Config, layer: int):
        super().__init__()
        self.cfg, self.layer = cfg, layer
        hd = cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.wo = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)

    def forward(self, x, cos, sin, cache: KVCache | None, start_pos: int):
        b, t, _ = x.shape
        hd = self.cfg.head_dim
        # -1 heads: under tensor parallelism each rank holds a slice of the heads.
        q = self.wq(x).view(b, t, -1, hd).transpose(1, 2)
        k = self.wk(x).view(b, t, -1, hd).transpose(1, 2)
        v = self.wv(x).view(b, t, -1, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if hasattr(cache, "attend"):  # a paged cache writes the new keys/values and attends per sequence
            out = cache.attend(self.layer, q, k, v)
            return self.wo(out.transpose(1, 2).reshape(b, t, -1))
        if cache is None:
            keys, values, causal, mask = k, v, True, None
        else:
            end = start_pos + t
            cache.k[self.layer, :b, :, start_pos:end] = k
            cache.v[self.layer, :b, :, start_pos:end] = v
            keys, values = cache.k[self.layer, :b, :, :end], cache.v[self.layer, :b, :, :end]
            # Query i sits at position start_pos + i and sees keys 0 .. start_pos + i.
            causal = False
            mask = None
            if t > 1:
                mask = torch.arange(end, device=x.device)[None, :] <= (start_pos + torch.arange(t, device=x.device))[:, None]
        groups = q.shape[1] // keys.shape[1]
        if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
            keys, values = keys.repeat_interleave(groups, dim=1), values.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal)
        return self.wo(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # gate
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # up
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)  # down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: Config, layer: int):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attention = Attention(cfg, layer)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x, cos, sin, cache=None, start_pos=0):
        x = x + self.attention(self.attention_norm(x), cos, sin, cache, start_pos)
        return x + self.feed_forward(self.ffn_norm(x))


class Decoder(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab, bias=False)
        cos, sin = rope_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None):
        """Random weights with the usual scale (std 0.02; output projections scaled by depth)."""
        gen = None
        if seed is not None:
            gen = torch.Generator(device="cpu").manual_seed(seed)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
                continue
            std = 0.02 / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("wo.weight", "w2.weight")) else 0.02
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).mul_(std).to(p.dtype))

    def new_cache(self, batch: int, max_seq: int | None = None) -> KVCache:
        p = self.output.weight
        return KVCache(self.cfg, batch, max_seq or self.cfg.max_seq, p.dtype, p.device)

    def forward(self, tokens: torch.Tensor, cache=None, start_pos: int = 0,
                positions: torch.Tensor | None = None, logits_at: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (batch, seq). `positions` (seq,) gives each token its own position (a paged step packs several
        sequences into one row, tokens (1, n)); `logits_at` picks the rows the output head runs on (the last token
        of each sequence: a prefill needs one row of logits, not one per prompt token)."""
        t = tokens.shape[1]
        if positions is None:
            if start_pos + t > self.cfg.max_seq:
                raise ValueError(f"positions {start_pos}..{start_pos + t} exceed max_seq {self.cfg.max_seq}")
            cos, sin = self.rope_cos[start_pos:start_pos + t], self.rope_sin[start_pos:start_pos + t]
        else:
            cos, sin = self.rope_cos[positions], self.rope_sin[positions]
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, cache, start_pos)
        if logits_at is not None:
            x = x[:, logits_at]
        return self.output(self.norm(x))
