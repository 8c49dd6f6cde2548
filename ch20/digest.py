"""Chunk digests: what a child commits to for every output before the parent's timer stops.

A tensor's bytes are cut into chunks of CHUNK_BYTES; each chunk gets a digest bound to its position and
to a per-verification key. Later the parent asks for some chunks of some outputs (chosen after the
commitment) and the reference child recomputes their digests from the bytes it received: bytes that were
computed after the timer stopped do not match what was committed before it.

    CPU   SHA-256 of (key, chunk index, bytes): cryptographic, so a commitment cannot be forged.
    CUDA  a keyed, position-dependent sum of mixed 30-bit words, two lanes (a single pass over the data,
          in Triton; the same arithmetic in torch ops when Triton is unavailable). NOT cryptographic: a
          candidate that defers its work and then solves a generalized-birthday problem over the tolerance
          slack of thousands of elements could forge one (see the README).

All the integer arithmetic stays below 2**63, so torch on CPU, torch on CUDA and Triton agree bit for bit.
"""
from __future__ import annotations

import hashlib

import torch

CHUNK_BYTES = 4 << 20
CHUNK_WORDS = CHUNK_BYTES // 4
M30 = 0x3FFFFFFF
# (lo, hi, position, mix1, mix2) multipliers per lane: the first three below 2**14, the mixes below 2**30
LANES = ((0x2F1B, 0x1C6D, 0x3A7F, 0x2C1B3C6D, 0x297A2D39), (0x3B29, 0x2E45, 0x1D0B, 0x1B873593, 0x0CC9E2D5))
BLOCK = 4096   # words per Triton program; CHUNK_WORDS is a multiple


def tensor_bytes(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes as a flat uint8 tensor on its device (a view when it is contiguous)."""
    c = t.detach().contiguous()
    return c.reshape(-1).view(torch.uint8) if c.numel() else torch.empty(0, dtype=torch.uint8, device=c.device)


def n_chunks(nbytes: int) -> int:
    return max(1, -(-nbytes // CHUNK_BYTES))


def _words(raw: torch.Tensor) -> torch.Tensor:
    if raw.numel() % 4:
        padded = torch.zeros(raw.numel() + 4 - raw.numel() % 4, dtype=torch.uint8, device=raw.device)
        padded[:raw.numel()] = raw
        raw = padded
    return raw.view(torch.int32)


def _mix_torch(w: torch.Tensor, start: int, key: tuple[int, int]) -> list[torch.Tensor]:
    """Per-word mixed values of both lanes (int64), words numbered from `start`."""
    lo = (w & 0xFFFF).to(torch.int64)
    hi = ((w >> 16) & 0xFFFF).to(torch.int64)
    pos = (torch.arange(w.numel(), device=w.device, dtype=torch.int64) + start) & M30
    out = []
    for (a, b, c, d, e), k in zip(LANES, key, strict=True):
        h = (lo * a + hi * b + pos * c + k) & M30
        h = h ^ (h >> 15)
        h = (h * d) & M30
        h = h ^ (h >> 13)
        h = (h * e) & M30
        out.append(h ^ (h >> 16))
    return out


def _digests_torch(raw: torch.Tensor, first_chunk: int, key) -> list[str]:
    w = _words(raw)
    out = []
    for s in range(0, max(w.numel(), 1), CHUNK_WORDS):
        h1, h2 = _mix_torch(w[s:s + CHUNK_WORDS], (first_chunk * CHUNK_WORDS) + s, key)
        out.append(f"{int(h1.sum()):016x}{int(h2.sum()):016x}")
    return out


_kernel = None


def _triton_kernel():
    global _kernel
    if _kernel is None:
        import triton
        import triton.language as tl

        @triton.jit
        def digest_kernel(words, partials, n, start, k1, k2, BLOCK: tl.constexpr):
            pid = tl.program_id(0).to(tl.int64)
            offs = pid * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
            m = offs < n
            w = tl.load(words + offs, mask=m, other=0)
            lo = (w & 0xFFFF).to(tl.int64)
            hi = ((w >> 16) & 0xFFFF).to(tl.int64)
            pos = (offs + start) & 0x3FFFFFFF
            h = (lo * 0x2F1B + hi * 0x1C6D + pos * 0x3A7F + k1) & 0x3FFFFFFF
            h = h ^ (h >> 15)
            h = (h * 0x2C1B3C6D) & 0x3FFFFFFF
            h = h ^ (h >> 13)
            h = (h * 0x297A2D39) & 0x3FFFFFFF
            h = h ^ (h >> 16)
            g = (lo * 0x3B29 + hi * 0x2E45 + pos * 0x1D0B + k2) & 0x3FFFFFFF
            g = g ^ (g >> 15)
            g = (g * 0x1B873593) & 0x3FFFFFFF
            g = g ^ (g >> 13)
            g = (g * 0x0CC9E2D5) & 0x3FFFFFFF
            g = g ^ (g >> 16)
            tl.store(partials + pid * 2, tl.sum(tl.where(m, h, 0), axis=0))
            tl.store(partials + pid * 2 + 1, tl.sum(tl.where(m, g, 0), axis=0))

        _kernel = digest_kernel
    return _kernel


def _digests_triton(raw: torch.Tensor, first_chunk: int, key) -> list[str]:
    w = _words(raw)
    n = w.numel()
    progs = max(1, -(-n // BLOCK))
    partials = torch.zeros(progs, 2, dtype=torch.int64, device=w.device)
    _triton_kernel()[(progs,)](w, partials, n, first_chunk * CHUNK_WORDS, key[0], key[1], BLOCK=BLOCK)
    per_chunk = CHUNK_WORDS // BLOCK
    pad = (-progs) % per_chunk
    if pad:
        partials = torch.cat([partials, partials.new_zeros(pad, 2)])
    sums = partials.view(-1, per_chunk, 2).sum(1).tolist()
    return [f"{a:016x}{b:016x}" for a, b in sums]


def _digests_sha(raw: torch.Tensor, first_chunk: int, key) -> list[str]:
    data = raw.cpu().numpy().tobytes() if raw.numel() else b""
    out = []
    for i, s in enumerate(range(0, max(len(data), 1), CHUNK_BYTES)):
        h = hashlib.sha256(f"{key[0]}:{key[1]}:{first_chunk + i}:".encode())
        h.update(data[s:s + CHUNK_BYTES])
        out.append(h.hexdigest())
    return out


METHODS = {"sha256": _digests_sha, "torch": _digests_torch, "triton": _digests_triton}


def pick_method(device: torch.device) -> str:
    """sha256 on the CPU; on CUDA Triton when it agrees with the torch arithmetic on a test buffer."""
    if device.type != "cuda":
        return "sha256"
    try:
        g = torch.Generator(device=device).manual_seed(1)
        raw = torch.randint(0, 256, (CHUNK_BYTES * 2 + 4096 + 2,), dtype=torch.uint8, device=device, generator=g)
        if _digests_triton(raw, 3, (5, 7)) == _digests_torch(raw, 3, (5, 7)):
            return "triton"
    except Exception:  # noqa: BLE001 - any Triton failure means: use the torch arithmetic
        pass
    return "torch"


def digests(t: torch.Tensor, key: tuple[int, int], method: str, first_chunk: int = 0) -> list[str]:
    """One digest per chunk of t's bytes; `first_chunk` numbers them when t holds chunks from the middle."""
    return METHODS[method](tensor_bytes(t), first_chunk, key)
