"""The one protocol every example follows.

An example file builds its inputs from a size preset and a seed, and names a baseline and one or more
optimized variants that compute the same function of those inputs. Everything else (verification,
timing, GB/s, TFLOP/s, targets) is the harness's job, not the example's.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch

from harness.device import REPO_ROOT
from harness.result import SIZES  # noqa: F401  (re-exported: examples and tools import it from here)

VariantFn = Callable[[Any], Any]   # a plain function is a variant that needs nothing more


@dataclass(frozen=True)
class Requires:
    """What an example needs; anything missing turns into `skipped: <reason>`, never a crash."""

    cuda: bool = False
    min_capability: tuple[int, int] | None = None  # e.g. (9, 0) for wgmma/TMA
    max_capability: tuple[int, int] | None = None  # e.g. (9, 0) for sm_90a-only code (wgmma does not run on sm_100)
    min_gpus: int = 1
    packages: tuple[str, ...] = ()

    def unmet(self, device: torch.device) -> str | None:
        for pkg in self.packages:
            if importlib.util.find_spec(pkg) is None:
                return f"needs the Python package {pkg!r}"
        needs_gpu = self.cuda or self.min_capability is not None or self.max_capability is not None or self.min_gpus > 1
        if not needs_gpu:
            return None
        want = "".join(map(str, self.min_capability or ()))
        if device.type != "cuda":
            return f"needs CUDA sm_{want}+" if want else "needs CUDA"
        if self.min_capability and torch.cuda.get_device_capability(device) < self.min_capability:
            major, minor = torch.cuda.get_device_capability(device)
            return f"needs sm_{want}+, this GPU is sm_{major}{minor}"
        if self.max_capability and torch.cuda.get_device_capability(device) > self.max_capability:
            major, minor = torch.cuda.get_device_capability(device)
            top = "".join(map(str, self.max_capability))
            return f"needs sm_{top} or older (architecture-specific code), this GPU is sm_{major}{minor}"
        if torch.cuda.device_count() < self.min_gpus:
            return f"needs {self.min_gpus} GPUs, {torch.cuda.device_count()} visible"
        return None


ROLES = ("baseline", "optimized", "reference")


@dataclass(frozen=True)
class Variant:
    """One way of computing the example's function, with what it needs and, where it matters, why it is so.

    A plain function may stand wherever a Variant is expected; it then needs nothing beyond the example.
    """

    fn: Callable[[Any], Any]
    requires: Requires = field(default_factory=Requires)
    # A teaching variant deliberately shows one effect; it is exempt from the roofline goals and headlines.
    teaching: bool = False
    note: str = ""        # shown beside the variant: e.g. why it cannot reach the roofline


class VariantSpec(NamedTuple):
    name: str
    role: str             # baseline | optimized | reference
    fn: Callable[[Any], Any]
    requires: Requires
    teaching: bool
    note: str


def _as_variant(v: Variant | Callable) -> Variant:
    if isinstance(v, Variant):
        return v
    if not callable(v):
        raise TypeError(f"a variant must be a function or Variant(...), got {type(v).__name__}")
    return Variant(v)


@dataclass
class Example:
    """A baseline, the optimized variants that must equal it, and references shown beside them.

    Roles:
    - `baseline`: what a competent engineer writes first (or, with `teaching_baseline`, a labelled naive one);
      every speedup is measured against it.
    - `optimized`: ours; verified against the baseline, timed, and the headline.
    - `reference`: the library one-liner (torch, cuBLAS, cuDNN, vendor code): verified and timed the same
      way and shown beside ours, never the headline. An optimized variant that loses to it says so.
    """

    title: str
    setup: Callable[..., Any]                        # (size, device, seed[, dist=name]) -> inputs
    baseline: Variant | VariantFn
    optimized: dict[str, Variant | VariantFn]
    references: dict[str, Variant | VariantFn] = field(default_factory=dict)
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
    requires: Requires = field(default_factory=Requires)   # for every variant; each may add its own
    tolerance: tuple[float, float] | None = None     # (rtol, atol) override; say why in the example
    cold_l2: bool = False                            # flush the L2 before every timed call
    # Input distributions the math has edge cases for; verification draws from each in turn, timing from the
    # first only, and setup is then called as setup(size, device, seed, dist=name). Empty: setup takes no `dist`.
    distributions: tuple[str, ...] = ()
    # Variants work in place on their inputs (e.g. an in-place activation); each call then gets its own copy.
    mutates_inputs: bool = False
    # An output may share storage with an input (a view, a no-op reshape); otherwise that fails verification.
    output_may_alias_input: bool = False
    # Variants start threads that outlive a call (a data loader's workers and pin-memory thread); otherwise a call
    # that leaves a thread running fails verification (work after the return is work no timer sees).
    keeps_threads: bool = False
    # Timing calls each get freshly drawn input contents (so no answer can be reused); False where setup is
    # too costly to run per call (a model's weights, say): then a small pool of input sets is rotated.
    fresh_inputs: bool = True

    def __post_init__(self):
        self.baseline = _as_variant(self.baseline)
        self.optimized = {k: _as_variant(v) for k, v in self.optimized.items()}
        self.references = {k: _as_variant(v) for k, v in self.references.items()}
        names = [self.baseline_name, *self.optimized, *self.references]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:  # a variant would be compared with itself, or two rows would share a name
            raise ValueError(f"variant names must be distinct: {', '.join(dup)}")
        if not self.optimized:
            raise ValueError("an example needs at least one optimized variant")

    def variants(self) -> list[VariantSpec]:
        """Baseline first, then the optimized variants, then the references."""
        rows = [(self.baseline_name, "baseline", self.baseline)]
        rows += [(n, "optimized", v) for n, v in self.optimized.items()]
        rows += [(n, "reference", v) for n, v in self.references.items()]
        return [VariantSpec(n, role, v.fn, v.requires, v.teaching, v.note) for n, role, v in rows]

    def make_inputs(self, size: str, device: torch.device, seed: int, dist: str | None = None):
        """The example's inputs; `dist` (one of `distributions`) only where the example declares some."""
        if self.distributions:
            return self.setup(size, device, seed, dist=dist or self.distributions[0])
        return self.setup(size, device, seed)


def range_name(example_id: str, variant: str) -> str:
    """`aisp.ch1.batched_matmul.bmm`: letters, digits, `_`, `-` and dots only.

    Nsight Compute's NVTX filter gives `/`, `@`, `*` and brackets a meaning (nesting, domains,
    wildcards), so a title such as "Host-to-device copy: pageable vs pinned" cannot be used as is.
    """
    clean = lambda s: re.sub(r"[^A-Za-z0-9_-]+", "_", s)  # noqa: E731
    return ".".join(["aisp", *(clean(part) for part in example_id.split("/")), clean(variant)])


def is_example_file(path: Path) -> bool:
    """A module that assigns EXAMPLE at top level; decided from the source, without importing torch.

    A file that does not parse counts as one: it is listed, and run as failed with its syntax error,
    rather than silently missing from every run.
    """
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (SyntaxError, UnicodeDecodeError):
        return True
    except OSError:
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
