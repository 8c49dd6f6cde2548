"""The one protocol every example follows.

An example file builds its inputs from a size preset and a seed, and names a baseline and one or more
optimized variants that compute the same function of those inputs. Everything else (verification,
timing, GB/s, TFLOP/s, targets) is the harness's job, not the example's.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from harness.device import REPO_ROOT

SIZES = ("tiny", "small", "full")

Variant = Callable[[Any], Any]


@dataclass(frozen=True)
class Requires:
    """What an example needs; anything missing turns into `skipped: <reason>`, never a crash."""

    cuda: bool = False
    min_capability: tuple[int, int] | None = None  # e.g. (9, 0) for wgmma/TMA
    min_gpus: int = 1
    packages: tuple[str, ...] = ()

    def unmet(self, device: torch.device) -> str | None:
        for pkg in self.packages:
            if importlib.util.find_spec(pkg) is None:
                return f"needs the Python package {pkg!r}"
        needs_gpu = self.cuda or self.min_capability is not None or self.min_gpus > 1
        if not needs_gpu:
            return None
        want = "".join(map(str, self.min_capability or ()))
        if device.type != "cuda":
            return f"needs CUDA sm_{want}+" if want else "needs CUDA"
        if self.min_capability and torch.cuda.get_device_capability(device) < self.min_capability:
            major, minor = torch.cuda.get_device_capability(device)
            return f"needs sm_{want}+, this GPU is sm_{major}{minor}"
        if torch.cuda.device_count() < self.min_gpus:
            return f"needs {self.min_gpus} GPUs, {torch.cuda.device_count()} visible"
        return None


@dataclass
class Example:
    title: str
    setup: Callable[[str, torch.device, int], Any]   # (size, device, seed) -> inputs
    baseline: Variant
    optimized: dict[str, Variant]
    baseline_name: str = "baseline"
    # A deliberately naive teaching baseline: reported, but its speedups are kept out of headlines.
    teaching_baseline: bool = False
    # What one call must do at minimum, for GB/s, TFLOP/s and the roofline. None: not meaningful.
    bytes_moved: Callable[[Any], int] | None = None
    flops: Callable[[Any], int] | None = None
    flops_dtype: str | None = None                   # which matrix ceiling applies: "bf16", "fp32", ...
    bandwidth_ceiling: str = "memory"                # which bandwidth ceiling applies: "memory", "h2d", "d2h", "p2p"
    items: Callable[[Any], int] | None = None        # e.g. samples per call, for a throughput figure
    items_unit: str = "items"
    requires: Requires = field(default_factory=Requires)
    tolerance: tuple[float, float] | None = None     # (rtol, atol) override; say why in the example
    cold_l2: bool = False                            # flush the L2 before every timed call

    def __post_init__(self):
        if self.baseline_name in self.optimized:  # it would be compared with itself
            raise ValueError(f"an optimized variant may not share the baseline's name {self.baseline_name!r}")
        if not self.optimized:
            raise ValueError("an example needs at least one optimized variant")

    def variants(self) -> list[tuple[str, str, Variant]]:
        """(name, role, fn), baseline first."""
        return [(self.baseline_name, "baseline", self.baseline)] + [
            (name, "optimized", fn) for name, fn in self.optimized.items()
        ]


def is_example_file(path: Path) -> bool:
    """A module that assigns EXAMPLE at top level; decided from the source, without importing torch."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "EXAMPLE" for t in targets):
            return True
    return False


def docstring_title(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    except (OSError, SyntaxError):
        return ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def load_example(path: Path) -> Example:
    """Import an example file; inside the repo it is imported as a package module (ch1.pinned_memory)."""
    path = path.resolve()
    try:
        rel = path.relative_to(REPO_ROOT)
        module = importlib.import_module(".".join(rel.with_suffix("").parts))
    except ValueError:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    example = getattr(module, "EXAMPLE", None)
    if not isinstance(example, Example):
        raise TypeError(f"{path} defines no EXAMPLE = Example(...)")
    return example
