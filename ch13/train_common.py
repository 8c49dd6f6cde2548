"""Chapter 13's subject: one training step of the Llama-style decoder (`inference/model.py`) on synthetic tokens.

Sizes (parameters counted by `Config.n_params`, vocabulary 32000 so the embedding does not dominate):
- `tiny`: 2 layers of width 64 (about 0.1 M parameters), batch 2 x 32 tokens: runs on a CPU in milliseconds;
- `small`: 12 layers of width 768 (about 125 M), batch 8 x 512 tokens;
- `full`: 16 layers of width 2048 (about 1.1 B), batch 4 x 2048 tokens.

Pure bf16 training on a GPU (weights, gradients and AdamW state in bf16), fp32 on the CPU. A step costs about
6 x parameters x tokens FLOPs (forward 2, backward 4) plus attention: at `full`, 6 x 1.1e9 x 8192 = 54 TFLOP,
about 0.1 s at a sustained ~600 bf16 TFLOP/s, so a step well under that is not compute-bound.

Every step is split into four phases (data, forward, backward, optimizer), each a `record_function` range
(seen by torch.profiler) and, on CUDA, an NVTX range (seen by Nsight Systems): `phase(name)`.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from inference.model import Config, Decoder

CONFIGS: dict[str, Config] = {
    "tiny": Config(vocab=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128, max_seq=64),
    "small": Config(vocab=32000, dim=768, n_layers=12, n_heads=12, n_kv_heads=4, ffn_dim=2048, max_seq=512),
    "full": Config(vocab=32000, dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, ffn_dim=8192, max_seq=2048),
}
BATCH: dict[str, tuple[int, int]] = {"tiny": (2, 32), "small": (8, 512), "full": (4, 2048)}  # (batch, seq)
PHASES = ("data", "forward", "backward", "optimizer")


def train_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def make_model(size: str, device: torch.device, seed: int = 0, cfg: Config | None = None,
               dtype: torch.dtype | None = None) -> Decoder:
    """The decoder with seeded random weights (std 0.02, norms 1), built directly on `device`.

    Built under `torch.device(device)` and initialised with a generator on that device: 1.1 B parameters
    drawn on the host would take longer than the steps that are measured."""
    with torch.device(device):
        model = Decoder(cfg or CONFIGS[size])
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    return model.to(dtype=dtype or train_dtype(device))


def make_optimizer(model: torch.nn.Module, impl: str, lr: float = 1e-3) -> torch.optim.AdamW:
    """AdamW as a for-loop over parameters ("for_loop"), multi-tensor ("foreach") or one fused kernel ("fused")."""
    flags = {"for_loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[impl]
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, **flags)


@contextlib.contextmanager
def phase(name: str, device: torch.device):
    """A named range for torch.profiler and, on CUDA, for Nsight Systems (NVTX push/pop)."""
    nvtx = device.type == "cuda"
    if nvtx:
        torch.cuda.nvtx.range_push(name)
    try:
        with torch.profiler.record_function(name):
            yield
    finally:
        if nvtx:
            torch.cuda.nvtx.range_pop()


def host_batch(size: str, vocab: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic tokens made on the host (as a naive loader hands them over); targets are the next token."""
    b, t = BATCH[size]
    seq = torch.randint(0, vocab, (b, t + 1), generator=gen)
    return seq[:, :-1], seq[:, 1:]


def loss_fn(model: Decoder, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = model(tokens)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def train_step(model, opt, tokens, targets, device: torch.device, *, pinned: bool = False,
               sync_loss: bool = False, loss=loss_fn):
    """One step in four phases. `sync_loss` reads the loss on the host (`.item()`, a full device sync), as a
    logging line does; `pinned` stages the host batch in pinned memory so the copy is asynchronous."""
    with phase("data", device):
        if pinned and device.type == "cuda":
            tokens, targets = tokens.pin_memory(), targets.pin_memory()
        tokens = tokens.to(device, non_blocking=pinned)
        targets = targets.to(device, non_blocking=pinned)
    with phase("forward", device):
        value = loss(model, tokens, targets)
    with phase("backward", device):
        value.backward()
    with phase("optimizer", device):
        opt.step()
        opt.zero_grad(set_to_none=True)
    if sync_loss:
        return value.item()
    return value.detach()
