"""An example's inputs as the harness handles them: walked, copied, fingerprinted, refilled, checked for aliasing.

Inputs are whatever `setup` returns (a tensor, or dicts, lists and tuples of tensors and plain values);
only the tensors matter here.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch


def tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for key in obj:
            yield from tensors(obj[key])
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tensors(item)


def clone(obj: Any) -> Any:
    """The same structure with every tensor copied (plain values shared)."""
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone(v) for v in obj)
    return obj


def nbytes(obj: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors(obj))


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes, so NaN compares equal to the same NaN and -0.0 differs from 0.0."""
    flat = t.detach().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.contiguous().view(torch.uint8) if flat.numel() else flat


class Fingerprint:
    """A copy of every input tensor, to tell afterwards whether a call wrote into its inputs (bit for bit)."""

    def __init__(self, obj: Any):
        self._pairs = [(t, t.detach().clone()) for t in tensors(obj)]

    def changed(self) -> str | None:
        for i, (t, copy) in enumerate(self._pairs):
            if t.shape != copy.shape or not torch.equal(_bits(t), _bits(copy)):
                return f"input tensor {i} (shape {tuple(copy.shape)}) was modified"
        return None

    def restore(self) -> None:
        """Put the original contents back, so that a variant caught writing into its inputs harms no one else."""
        with torch.no_grad():
            for t, copy in self._pairs:
                if t.shape == copy.shape:
                    t.copy_(copy)


def refill(target: Any, source: Any) -> None:
    """Make `target` hold `source`'s inputs: tensors written in place (same storage, new values); plain values
    (a scale drawn with the tensors, say), tuples of them, and tensors whose shape differs (ragged inputs)
    replaced in their dict or list."""
    with torch.no_grad():
        _refill(target, source)


def _refill(target: Any, source: Any) -> None:
    if isinstance(target, torch.Tensor):
        target.copy_(source)
        return
    if isinstance(target, dict):
        keys = target.keys()
    elif isinstance(target, (list, tuple)):
        keys = range(len(target))
    else:
        return
    for k in keys:
        dst, src = target[k], source[k]
        if isinstance(dst, tuple) and not isinstance(target, tuple) and next(tensors(dst), None) is None:
            if dst != src:
                target[k] = src   # a tuple of plain values (sizes, scales): replaced whole in its dict or list
            continue
        if isinstance(dst, torch.Tensor) and dst.shape != src.shape and not isinstance(target, tuple):
            target[k] = src.clone()   # ragged inputs (row lengths drawn per seed): a new tensor in the same dict
            continue
        if isinstance(dst, (torch.Tensor, dict, list, tuple)):
            _refill(dst, src)
        elif dst is not src and dst != src:
            if isinstance(target, tuple):
                raise TypeError("inputs hold a plain value inside a tuple, which cannot be refilled in place: "
                                "return a dict or a list from setup")
            target[k] = src


def _span(t: torch.Tensor) -> tuple[int, int]:
    if t.numel() == 0:
        return (0, 0)
    start = t.data_ptr()
    extent = sum((s - 1) * st for s, st in zip(t.shape, t.stride(), strict=True) if s > 0)
    return start, start + (extent + 1) * t.element_size()


def aliases(outputs: list[torch.Tensor], inputs: Any) -> str | None:
    """Which output shares memory with which input, if any (views, or the input returned as it is)."""
    spans = [(i, t.device, _span(t)) for i, t in enumerate(tensors(inputs)) if t.numel()]
    for j, out in enumerate(outputs):
        if out.numel() == 0:
            continue
        lo, hi = _span(out)
        for i, dev, (a, b) in spans:
            if dev == out.device and lo < b and a < hi:
                return f"output {j} shares memory with input tensor {i}"
    return None
