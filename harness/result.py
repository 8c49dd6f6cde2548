"""The run contract: what the parent asks of an example's process, and the one result type it gets back.

`RunOptions` goes to the child as one JSON file; `ExampleResult` (with a `VariantResult` per variant) comes
back as one JSON file, and every consumer (peaks, targets, expectations, report, roofline, render, compare,
profiling) reads it. Speedups are computed here and nowhere else: `ExampleResult.speedup()`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 2
SIZES = ("tiny", "small", "full")
STATUSES = ("ok", "failed", "timeout", "skipped", "interrupted")


def default_size(device_type: str) -> str:
    """The one place the default size is decided: the full problem on a GPU, the tiny one on the CPU."""
    return "full" if device_type == "cuda" else "tiny"


class ContractError(ValueError):
    """A result or options file that does not follow this contract (wrong schema, unknown keys)."""


def _from_fields(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ContractError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ContractError(f"{where}: unknown keys {', '.join(unknown)}")
    return cls(**data)


@dataclass
class RunOptions:
    """Everything the child needs to run one example, sent as one JSON."""

    device: str = "auto"
    size: str | None = None          # None: default_size(device)
    seed: int | None = None          # None: the child draws one and records it
    cold_l2: bool = False
    max_time_s: float = 2.0          # per variant, for the timing stop rule
    cpu_threads: int = 1             # intra-op threads in the child (torch's default pool stalls on shared machines)
    trials: int = 3                  # verification trials, each on freshly drawn inputs

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunOptions:
        opts = _from_fields(cls, json.loads(text), "run options")
        if opts.size is not None and opts.size not in SIZES:
            raise ContractError(f"run options: size must be one of {', '.join(SIZES)}, got {opts.size!r}")
        if opts.cpu_threads < 1 or opts.trials < 1 or opts.max_time_s <= 0:
            raise ContractError("run options: cpu_threads and trials must be >= 1 and max_time_s > 0")
        return opts


@dataclass
class VariantResult:
    name: str
    role: str                                  # baseline | optimized | reference
    status: str = "ok"                         # ok | failed | skipped (its own requirement unmet)
    reason: str = ""
    teaching: bool = False
    note: str = ""
    verified: bool = False                     # the baseline is the reference point: True once it ran
    max_abs_err: float | None = None
    rel_l2_err: float | None = None
    tolerance: list[float] | None = None       # [rtol, atol]
    median_ms: float | None = None
    p25_ms: float | None = None
    p75_ms: float | None = None
    min_ms: float | None = None
    samples: int = 0
    reps: int = 0                              # calls per sample
    converged: bool | None = None
    wall_ms: float | None = None               # host wall clock per call: work the events miss shows here
    samples_ms: list[float] = field(default_factory=list)   # raw per-call samples, in the order taken
    paired_speedup: float | None = None        # median over rounds of baseline sample / this sample
    paired_speedup_p25: float | None = None
    paired_speedup_p75: float | None = None
    gbps: float | None = None
    tflops: float | None = None
    items_per_s: float | None = None
    fraction_of_peak_bandwidth: float | None = None
    fraction_of_peak_flops: float | None = None
    timed_checks: int = 0                      # outputs of timed calls checked against the baseline

    @property
    def timed(self) -> bool:
        return self.verified and self.median_ms is not None

    @property
    def iqr_ms(self) -> float | None:
        return None if self.p25_ms is None or self.p75_ms is None else self.p75_ms - self.p25_ms

    def fail(self, reason: str) -> None:
        """Not verified: no time, no figures, no speedup."""
        self.status, self.reason, self.verified = "failed", reason, False
        for name in ("median_ms", "p25_ms", "p75_ms", "min_ms", "wall_ms", "paired_speedup", "paired_speedup_p25",
                     "paired_speedup_p75", "gbps", "tflops", "items_per_s", "fraction_of_peak_bandwidth",
                     "fraction_of_peak_flops"):
            setattr(self, name, None)


@dataclass
class TargetCheck:
    metric: str
    op: str
    value: float | None          # the claim for this GPU; None: no claim applies here
    measured: float | None
    met: bool | None             # None: no claim applies (or the variant it judges was skipped)
    source: str
    variant: str | None = None   # the variant judged; None: the fastest verified optimized one
    why: str = ""                # why there is no measurement, where there is none


@dataclass
class ExampleResult:
    schema: int = SCHEMA_VERSION
    id: str = ""
    chapter: str = ""
    title: str = ""
    status: str = "ok"
    reason: str = ""
    size: str | None = None
    seed: int | None = None
    device: str = ""
    cold_l2: bool = False                     # asked for
    cold_l2_applied: bool = False             # done (never on the CPU, which has no L2 to flush from here)
    teaching_baseline: bool = False
    items_unit: str = "items"
    flops_dtype: str | None = None
    bandwidth_ceiling: str = "memory"
    input_rotation: str = ""                  # how timed calls got their inputs
    variants: list[VariantResult] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    targets: list[TargetCheck] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    peak_source: str = ""
    peaks_used: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)   # threads, affinity, load, clocks before/after
    elapsed_s: float | None = None

    # --- the one place figures are derived ---------------------------------------------------------------
    def variant(self, name: str) -> VariantResult | None:
        return next((v for v in self.variants if v.name == name), None)

    @property
    def baseline(self) -> VariantResult | None:
        return next((v for v in self.variants if v.role == "baseline"), None)

    def fastest(self, role: str = "optimized") -> VariantResult | None:
        """The fastest verified, timed variant of a role."""
        timed = [v for v in self.variants if v.role == role and v.timed]
        return min(timed, key=lambda v: v.median_ms) if timed else None

    def speedup(self, name: str | None = None, over: str = "baseline") -> float | None:
        """Of the variant named (default: the fastest optimized one) over the baseline, or over the fastest reference.

        Over the baseline it is the paired figure (the median of per-round ratios, rounds interleaved) where
        the timing produced one, else the ratio of medians.
        """
        mine = self.variant(name) if name else self.fastest("optimized")
        if mine is None or not mine.timed:
            return None
        if over == "baseline":
            base = self.baseline
            if base is None or not base.timed:
                return None
            if mine is base:
                return 1.0
            return mine.paired_speedup if mine.paired_speedup is not None else base.median_ms / mine.median_ms
        if over == "reference":
            ref = self.fastest("reference")
            return None if ref is None else ref.median_ms / mine.median_ms
        raise ValueError(f"speedup over {over!r}: baseline or reference")

    def settle(self) -> None:
        """An ok example with a variant that failed (not verified, or implausible) has failed, and says which."""
        failed = [v for v in self.variants if v.status == "failed"]
        if failed and self.status == "ok":
            self.status = "failed"
            self.reason = "; ".join(f"{v.name} not verified: {v.reason}" for v in failed)

    @property
    def missed(self) -> list[TargetCheck]:
        return [t for t in self.targets if t.met is False]

    # --- JSON --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["speedup"] = self.speedup()               # derived, written for readers of the JSON; ignored on load
        d["speedup_vs_reference"] = self.speedup(over="reference")
        return d

    @classmethod
    def from_dict(cls, data: dict) -> ExampleResult:
        if not isinstance(data, dict):
            raise ContractError(f"result: expected an object, got {type(data).__name__}")
        data = dict(data)
        schema = data.get("schema", 1)
        if schema > SCHEMA_VERSION:
            raise ContractError(f"result schema {schema} is newer than this harness's {SCHEMA_VERSION}")
        if schema < SCHEMA_VERSION:
            data = _upgrade_v1(data)
        for derived in ("speedup", "speedup_vs_reference"):
            data.pop(derived, None)
        variants = [_from_fields(VariantResult, v, "variant") for v in data.pop("variants", [])]
        checks = [_from_fields(TargetCheck, t, "target") for t in data.pop("targets", [])]
        return _from_fields(cls, {**data, "variants": variants, "targets": checks}, "result")

    @classmethod
    def failure(cls, status: str, reason: str, **ids) -> ExampleResult:
        return cls(status=status, reason=reason, **ids)


def _upgrade_v1(data: dict) -> dict:
    """Schema 1 (untyped dicts, recorded before the contract): keep what maps, drop what does not."""
    names = {f.name for f in dataclasses.fields(ExampleResult)}
    out = {k: v for k, v in data.items() if k in names}
    out["schema"] = SCHEMA_VERSION
    vnames = {f.name for f in dataclasses.fields(VariantResult)}
    rows = []
    for v in data.get("variants", []):
        row = {k: val for k, val in v.items() if k in vnames}   # v1 kept the IQR, not its ends: no range shown
        row["samples"] = v.get("samples") if isinstance(v.get("samples"), int) else 0
        rows.append(row)
    out["variants"] = rows
    tnames = {f.name for f in dataclasses.fields(TargetCheck)}
    out["targets"] = [{k: val for k, val in t.items() if k in tnames} for t in data.get("targets", [])]
    return out
