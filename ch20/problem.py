"""A KernelBench-format problem: load it, draw its inputs, and read what it declares.

A problem file defines ``class Model(nn.Module)``, ``get_inputs(size="full")`` and
``get_init_inputs(size="full")`` (KernelBench's no-argument calls still work: they get the full size).
It may also declare:

    FAMILY               which search template fits ("softmax", "matmul", ...); default "generic"
    DTYPES               {"tiny": torch.float32, "full": torch.bfloat16}: the dtype of float inputs and
                         of the model's parameters at each size; at a size it does not name, inputs keep
                         the dtype get_inputs gives them (float64, float16, ...) and the model stays as
                         constructed
    INPUT_DISTRIBUTIONS  the distributions its inputs may be drawn from (see DISTRIBUTIONS); a declared
                         one on which the reference is not finite is an error; without the declaration,
                         ("normal", "large"), and "large" is left out where the reference overflows on it
                         (an exp, a cumprod: KernelBench's files declare nothing)

The model runs as constructed, in training mode as KernelBench runs it (BatchNorm normalizes by the
batch's statistics); a reference whose output differs between two calls on the same inputs (dropout in
training mode, torch.rand in forward, state that changes per call) cannot be verified: ProblemError.
    TOLERANCE            (rtol, atol) instead of the dtype's; the file says why
    flops(inputs), bytes_moved(inputs)   the work one call must do, for the above-peak check

Problem files are trusted code (ours); candidates are not, and are never imported here.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

SIZES = ("tiny", "small", "full")
DEFAULT_DISTRIBUTIONS = ("normal", "large")

# What each distribution catches. Every one starts from the problem's own get_inputs (standard normal
# in all of ours) and is applied to floating-point inputs only.
DISTRIBUTIONS = {
    "normal": "as get_inputs draws them (standard normal in ours, uniform in KernelBench's)",
    "large": "x * 100: overflow, e.g. a softmax without the max subtraction",
    "shifted": "x + 50: cancellation, e.g. a variance computed as E[x^2] - E[x]^2",
    "skewed": "exp(x), log-normal: all positive with a heavy tail; a low-precision accumulator drifts",
    "sparse": "half the elements exactly 0 and 1% of them x * 1000: edge values for activations",
    "rowwise": "every row its own scale (1e-2 to 1e3, rows in random order) and shift: a kernel that decides "
               "from some rows what to do with all of them",
    "edge_rows": "a quarter of the rows constant (k/4), an eighth x 1e4: a normalization without eps, overflow",
    "neg_inf": "in a quarter of the rows, half the entries -inf (never a whole row): masked-softmax inputs",
}

class ProblemError(Exception):
    """The problem file itself is unusable (a usage error, exit 2)."""


def load_module(path: Path, name: str):
    """Import a Python file under a private module name (used for problems here, candidates in the child)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def call_sized(fn, size: str):
    """get_inputs(size) for our problems, get_inputs() for KernelBench's."""
    try:
        takes_size = bool(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        takes_size = False
    return fn(size) if takes_size else fn()


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1]) if x.dim() else x.reshape(1, 1)


def _pick(n: int, share: float, gen: torch.Generator, device) -> torch.Tensor:
    """A random set of at least one of n rows (the same set for every input drawn with this generator state)."""
    k = max(1, int(n * share))
    return torch.randperm(n, generator=gen, device=device)[:k]


def apply_distribution(x: torch.Tensor, name: str, gen: torch.Generator) -> torch.Tensor:
    """x (float32 or float64, on the generator's device) reshaped by a distribution; rows are the last dimension."""
    dev = x.device
    if name == "normal":
        return x
    if name == "large":
        return x * 100.0
    if name == "shifted":
        return x + 50.0
    if name == "skewed":
        return torch.exp(x)
    if name == "sparse":
        u = torch.rand(x.shape, generator=gen, device=dev)
        return torch.where(u < 0.5, torch.zeros_like(x), torch.where(u > 0.99, x * 1000.0, x))
    rows = _rows(x.clone())
    n = rows.shape[0]
    if name == "rowwise":
        order = torch.randperm(n, generator=gen, device=dev)
        scale = torch.logspace(-2, 3, n, device=dev)[order] if n > 1 else torch.full((1,), 1e3, device=dev)
        shift = torch.randn(n, generator=gen, device=dev) * torch.logspace(-1, 2, n, device=dev)[order]
        return (rows * scale[:, None] + shift[:, None]).reshape(x.shape)
    if name == "edge_rows":
        picked = _pick(n, 0.375, gen, dev)
        constant, huge = picked[: max(1, (picked.numel() * 2) // 3)], picked[max(1, (picked.numel() * 2) // 3):]
        # k/4 for integer k: the row's sum and mean are exact, so an honest kernel gets x - mean = 0 exactly
        # (a rounded mean would make every honest layernorm differ by rounding / sqrt(eps))
        value = torch.randint(-40, 41, (constant.numel(), 1), generator=gen, device=dev).float() / 4
        rows[constant] = value.expand(-1, rows.shape[1])
        rows[huge] = rows[huge] * 1e4
        return rows.reshape(x.shape)
    if name == "neg_inf":
        picked = _pick(n, 0.25, gen, dev)
        mask = torch.rand(picked.numel(), rows.shape[1], generator=gen, device=dev) < 0.5
        mask[:, torch.randint(rows.shape[1], (1,), generator=gen, device=dev)] = False  # never a whole row
        rows[picked] = rows[picked].masked_fill(mask, float("-inf"))
        return rows.reshape(x.shape)
    raise ProblemError(f"unknown input distribution {name!r}; known: {', '.join(DISTRIBUTIONS)}")


@dataclass(frozen=True)
class Problem:
    path: Path
    name: str
    family: str
    distributions: tuple[str, ...]
    dtypes: dict
    tolerance: tuple[float, float] | None
    title: str
    module: object
    declares_distributions: bool = True   # False: the defaults, which the reference may narrow (session.py)

    def dtype(self, size: str) -> torch.dtype:
        return self.dtypes.get(size, torch.float32)

    def declared_dtype(self, size: str) -> torch.dtype | None:
        """The dtype DTYPES names for this size; None: inputs as get_inputs draws them, the model as built."""
        return self.dtypes.get(size)

    def dtype_name(self, size: str) -> str:
        """"" when the problem names no dtype for this size (what the children are told)."""
        d = self.declared_dtype(size)
        return str(d).replace("torch.", "") if d is not None else ""

    @property
    def source(self) -> str:
        return self.path.read_text()

    @property
    def sha256(self) -> str:
        return sha256_file(self.path)

    def init_inputs(self, size: str) -> list:
        return list(call_sized(self.module.get_init_inputs, size))

    def make_inputs(self, size: str, seed: int, distribution: str, device="cpu") -> list:
        """Fresh inputs for one call, drawn on `device`: the problem's draw under `seed` (get_inputs runs
        with `device` as the default, so nothing of that size passes through the host), reshaped by a
        distribution. The same (seed, distribution, device) gives the same inputs in any process."""
        return draw_inputs(self.module.get_inputs, size, self.declared_dtype(size), seed, distribution, device)

    def work(self, inputs: list) -> tuple[int | None, int | None]:
        """(bytes, flops) one call must move and do, where the problem says."""
        nbytes = getattr(self.module, "bytes_moved", None)
        nflops = getattr(self.module, "flops", None)
        return (int(nbytes(inputs)) if nbytes else None, int(nflops(inputs)) if nflops else None)


def draw_inputs(get_inputs, size: str, dtype: torch.dtype | None, seed: int, distribution: str, device="cpu") -> list:
    """dtype None: each float input keeps the dtype get_inputs gave it (float64 stays float64). Integer, bool
    and non-tensor inputs are passed as drawn: no distribution touches them."""
    dev = torch.device(device)
    with torch.device(dev):
        torch.manual_seed(seed)     # the CPU and every CUDA generator
        raw = list(call_sized(get_inputs, size))
    out = []
    for x in raw:
        if isinstance(x, torch.Tensor):
            x = x.detach().to(dev)
            if x.is_floating_point():
                gen = torch.Generator(device=dev).manual_seed(seed ^ 0x5EED)   # same rows picked in every input
                work = torch.float64 if x.dtype == torch.float64 else torch.float32
                x = apply_distribution(x.to(work), distribution, gen).to(dtype or x.dtype)
            x = x.contiguous()
        out.append(x)
    return out


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_problem(path: str | Path) -> Problem:
    path = Path(path).resolve()
    if not path.is_file():
        raise ProblemError(f"no problem file {path}")
    try:
        module = load_module(path, f"ch20_problem_{path.stem}")
    except Exception as exc:
        raise ProblemError(f"{path.name} does not import: {type(exc).__name__}: {exc}") from exc
    missing = [n for n in ("Model", "get_inputs", "get_init_inputs") if not hasattr(module, n)]
    if missing:
        raise ProblemError(f"{path.name} lacks {', '.join(missing)} (KernelBench format)")
    declared = hasattr(module, "INPUT_DISTRIBUTIONS")
    dists = tuple(getattr(module, "INPUT_DISTRIBUTIONS", DEFAULT_DISTRIBUTIONS))
    unknown = [d for d in dists if d not in DISTRIBUTIONS]
    if unknown or not dists:
        raise ProblemError(f"{path.name}: unknown INPUT_DISTRIBUTIONS {unknown}; known: {', '.join(DISTRIBUTIONS)}")
    tol = getattr(module, "TOLERANCE", None)
    doc = (module.__doc__ or "").strip().splitlines()
    return Problem(path=path, name=path.stem, family=getattr(module, "FAMILY", "generic"), distributions=dists,
                   dtypes=dict(getattr(module, "DTYPES", {})), tolerance=tuple(tol) if tol else None,
                   title=doc[0] if doc else path.stem, module=module, declares_distributions=declared)


def tensor_sha256(t) -> str:
    """An exact fingerprint of a tensor (dtype, shape, bytes) or of a plain value."""
    h = hashlib.sha256()
    if isinstance(t, torch.Tensor):
        c = t.detach().to("cpu").contiguous()
        h.update(f"{c.dtype}{tuple(c.shape)}".encode())
        if c.numel():
            h.update(c.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(repr(t).encode())
    return h.hexdigest()
