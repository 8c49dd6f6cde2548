"""What the chip can do: measured ceilings from `peaks/<gpu-slug>.json`, else the datasheet.

`benchmark_peak.py` measures the ceilings of the GPU at hand and writes `peaks/<gpu-slug>.json` (one file
per GPU model, overwritten by the next full run). `annotate()` turns each example's GB/s and TFLOP/s into
fractions of those ceilings: bandwidth against the measured device-memory copy rate (bytes read plus bytes
written), FLOP/s against the measured matrix rate for the example's `flops_dtype`. Without a peaks file
the datasheet figure is used and labelled as such; a datasheet figure is a lead, never a measurement.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.device import REPO_ROOT, gpu_slug

PEAKS_DIR = REPO_ROOT / "peaks"

# Vendor datasheet values (NVIDIA product pages and whitepapers), dense, without 2:4 sparsity: leads, not
# measurements. memory_gbps: device memory, GB/s. fp32: CUDA cores; tf32/fp16/bf16/fp8: tensor cores with
# FP32 accumulation (what torch.mm and _scaled_mm use), TFLOP/s. host_link_gbps: host <-> GPU, one direction
# (PCIe Gen5 x16 = 64, Gen4 x16 = 32). gpu_link_gbps: GPU <-> GPU, one direction (NVLink, or PCIe where the
# card has no NVLink; None where peer access is not supported).
#   B200: HGX B200 per-GPU figures (1000 W); NVIDIA's launch material said 8 TB/s and 80 TFLOP/s FP32.
#   A100: the SXM 80 GB part (the 40 GB and PCIe parts have other memory bandwidths, so they map to no row).
#   RTX 4090: Ada whitepaper, FP32-accumulate rates (half the FP16-accumulate ones).
DATASHEET: dict[str, dict[str, float | None]] = {
    "B200":      dict(memory_gbps=7700, fp32=75.0, tf32=1100.0, fp16=2250.0, bf16=2250.0, fp8=4500.0,
                      host_link_gbps=64, gpu_link_gbps=900),
    "H200":      dict(memory_gbps=4800, fp32=66.9, tf32=494.7, fp16=989.4, bf16=989.4, fp8=1978.9,
                      host_link_gbps=64, gpu_link_gbps=450),
    "H100 SXM":  dict(memory_gbps=3350, fp32=66.9, tf32=494.7, fp16=989.4, bf16=989.4, fp8=1978.9,
                      host_link_gbps=64, gpu_link_gbps=450),
    "H100 PCIe": dict(memory_gbps=2000, fp32=51.0, tf32=378.0, fp16=756.0, bf16=756.0, fp8=1513.0,
                      host_link_gbps=64, gpu_link_gbps=64),
    "A100":      dict(memory_gbps=2039, fp32=19.5, tf32=156.0, fp16=312.0, bf16=312.0, fp8=None,
                      host_link_gbps=32, gpu_link_gbps=300),
    "L40S":      dict(memory_gbps=864, fp32=91.6, tf32=183.0, fp16=362.05, bf16=362.05, fp8=733.0,
                      host_link_gbps=32, gpu_link_gbps=32),
    "RTX 4090":  dict(memory_gbps=1008, fp32=82.6, tf32=82.6, fp16=165.2, bf16=165.2, fp8=330.3,
                      host_link_gbps=32, gpu_link_gbps=None),
}
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8")
UNITS = {"memory_gbps": "GB/s", "host_link_gbps": "GB/s", "gpu_link_gbps": "GB/s", **{d: "TFLOP/s" for d in DTYPES}}


def datasheet_key(name: str) -> str | None:
    """The DATASHEET row for a device name, or None when no row describes that exact part."""
    up = name.upper()
    if re.search(r"\bB200\b", up):
        return "B200"
    if re.search(r"\bH200\b", up) and "NVL" not in up:          # H200 NVL is a lower-power part
        return "H200"
    if re.search(r"\bH100\b", up) and "NVL" not in up:          # H100 NVL has its own memory and clocks
        return "H100 PCIe" if "PCIE" in up else "H100 SXM"
    if re.search(r"\bA100\b", up) and "PCIE" not in up and "40GB" not in up:
        return "A100"
    if re.search(r"\bL40S\b", up):
        return "L40S"
    if re.search(r"\bRTX 4090\b", up) and not re.search(r"4090\s*(D|LAPTOP)", up):
        return "RTX 4090"
    return None


CPU_PEAKS = REPO_ROOT / "results" / "peaks" / "cpu.json"   # where benchmark_peak.py writes a CPU's figures


def peaks_path(name: str, peaks_dir: Path | None = None) -> Path:
    """GPU ceilings are committed under peaks/; a CPU's are this machine's own, under results/peaks/."""
    if name == "cpu" and peaks_dir is None:
        return CPU_PEAKS
    return (peaks_dir or PEAKS_DIR) / f"{gpu_slug(name)}.json"


def load_peaks(path: Path) -> dict:
    """A peaks file, checked enough that a bad one fails here with its name rather than later."""
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("figures"), dict):
        raise ValueError(f"{path} is not a peaks file (no 'figures' table)")
    for name, entry in data["figures"].items():
        value = entry.get("value") if isinstance(entry, dict) else "missing"
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{path}: figure {name!r} has no numeric value")
    return data


def figure(peaks: dict, name: str) -> float | None:
    entry = peaks.get("figures", {}).get(name)
    return entry.get("value") if isinstance(entry, dict) else None


# Which bandwidth an example's GB/s is held against: device memory unless the result names another link
# (result["bandwidth_ceiling"], e.g. "h2d" for a host-to-device copy). Each: measured figure, datasheet column.
BANDWIDTH_CEILINGS = {"memory": ("memory_copy_gbps", "memory_gbps"), "h2d": ("h2d_pinned_gbps", "host_link_gbps"),
                      "d2h": ("d2h_pinned_gbps", "host_link_gbps"), "p2p": ("p2p_*", "gpu_link_gbps")}


@dataclass
class Ceilings:
    bandwidth: dict[str, float] = field(default_factory=dict)   # "memory", "h2d", "d2h", "p2p" -> GB/s
    tflops: dict[str, float] = field(default_factory=dict)      # dtype -> TFLOP/s
    sources: dict[str, str] = field(default_factory=dict)       # any key above -> where its figure came from
    l2_gbps: float | None = None     # measured only: the datasheets give no L2 figure
    missing: str = ""                # why there are no ceilings at all
    # The most any code can reach here (best measured figure, burst included, or the datasheet, whichever is
    # higher): a variant above PLAUSIBLE x these is reporting work it did not do.
    bound_gbps: dict[str, float] = field(default_factory=dict)
    bound_tflops: dict[str, float] = field(default_factory=dict)

    @property
    def memory_gbps(self) -> float | None:
        return self.bandwidth.get("memory")

    def source(self, names: list[str] | None = None) -> str:
        """Where the named figures (default: all) came from, in one line."""
        names = [n for n in (names if names is not None else list(self.sources)) if n in self.sources]
        distinct = list(dict.fromkeys(self.sources[n] for n in names))
        if not distinct:
            return self.missing or "none: no ceiling for this figure"
        if len(distinct) == 1:
            return distinct[0]
        return "; ".join(f"{n} {self.sources[n]}" for n in names)


def _label(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _measured(peaks: dict, name: str) -> float | None:
    if name.endswith("*"):   # the best of a family, e.g. every GPU pair's p2p figure
        values = [f.get("value") for n, f in peaks.get("figures", {}).items() if n.startswith(name[:-1])]
        return max((v for v in values if v is not None), default=None)
    return figure(peaks, name)


def ceilings(device_info: dict, peaks_dir: Path | None = None) -> Ceilings:
    """Measured ceilings when a peaks file exists for this device, the datasheet row for what it lacks."""
    name = device_info.get("name", "cpu")
    key = datasheet_key(name)
    sheet = DATASHEET.get(key, {})
    path = peaks_path(name, peaks_dir)
    measured = load_peaks(path) if path.exists() else {}
    out = Ceilings(l2_gbps=figure(measured, "l2_copy_gbps"),
                   missing=f"none: no {_label(path)} and no datasheet row for {name!r}")
    wanted = [(label, fig, col, out.bandwidth) for label, (fig, col) in BANDWIDTH_CEILINGS.items()]
    wanted += [(dt, f"matmul_{dt}_tflops", dt, out.tflops) for dt in DTYPES]
    for label, fig_name, sheet_column, into in wanted:
        value, source = _measured(measured, fig_name), f"measured {_label(path)}"
        if value is None and sheet.get(sheet_column):
            value, source = sheet[sheet_column], f"datasheet {key} (not measured)"
        if value is not None:
            into[label], out.sources[label] = value, source
    best_memory = [figure(measured, f"memory_{k}_gbps") for k in ("read", "write", "copy")] + [sheet.get("memory_gbps")]
    for label, value in out.bandwidth.items():
        candidates = [value] + (best_memory if label == "memory" else [sheet.get(BANDWIDTH_CEILINGS[label][1])])
        out.bound_gbps[label] = max(v for v in candidates if v)
    for dt, value in out.tflops.items():
        extra = [figure(measured, f"matmul_{dt}_burst_tflops"), sheet.get(dt)]
        out.bound_tflops[dt] = max(v for v in [value, *extra] if v)
    return out


PLAUSIBLE = 1.05
# A CPU core cannot do more per cycle than two 64-byte loads and one store, or 64 fp32 FLOPs (two AVX-512 FMAs);
# matrix units (AMX) do far more on bf16/fp16/int8. At an upper 6 GHz, per timing thread.
CPU_BOUND_GBPS_PER_THREAD = 6.0 * 192
CPU_BOUND_TFLOPS_PER_THREAD = {"fp32": 6e9 * 64 / 1e12, "fp64": 6e9 * 32 / 1e12, "tf32": 6e9 * 64 / 1e12}
CPU_BOUND_TFLOPS_MATRIX = 6e9 * 2048 / 1e12


def implausible(result, ceil: Ceilings, device_info: dict, threads: int | None) -> dict[str, str]:
    """Variants whose figures exceed what this machine can do by more than 5%: name -> why.

    Data that fits in the L2 (and was not flushed) is held against the L2 bandwidth, where one was measured.
    """
    out = {}
    cpu = device_info.get("name", "cpu") == "cpu"
    link = result.bandwidth_ceiling or "memory"
    l2_bytes = device_info.get("l2_bytes") or 0
    for v in result.variants:
        if not v.timed:
            continue
        if v.gbps is not None:
            bound = CPU_BOUND_GBPS_PER_THREAD * (threads or 1) if cpu else ceil.bound_gbps.get(link)
            per_call = v.gbps * 1e9 * v.median_ms / 1e3
            if not cpu and link == "memory" and per_call <= l2_bytes and not result.cold_l2_applied:
                bound = max(bound or 0, ceil.l2_gbps or 0) or None
                if not ceil.l2_gbps:
                    bound = None   # in the L2 and no L2 figure: nothing to hold it against
            if bound and v.gbps > PLAUSIBLE * bound:
                out[v.name] = f"{v.gbps:.4g} GB/s is over {PLAUSIBLE:g}x the most this machine can move ({bound:.4g} GB/s)"
        if v.tflops is not None:
            dt = result.flops_dtype or "fp32"
            bound = (CPU_BOUND_TFLOPS_PER_THREAD.get(dt, CPU_BOUND_TFLOPS_MATRIX) * (threads or 1)) if cpu \
                else ceil.bound_tflops.get(dt)
            if bound and v.tflops > PLAUSIBLE * bound:
                out[v.name] = (f"{v.tflops:.4g} TFLOP/s is over {PLAUSIBLE:g}x the most this machine computes "
                               f"({bound:.4g} TFLOP/s {dt})")
    return out


def annotate(result, device_info: dict, peaks_dir: Path | None = None, ceil: Ceilings | None = None) -> None:
    """Set fraction_of_peak_bandwidth / fraction_of_peak_flops on each variant of an ExampleResult, and say where
    the peaks came from; a variant whose figures this machine cannot reach fails as implausible.

    `ceil`: ceilings already read (a sweep reads them once); else they are read for `device_info`.
    """
    ceil = ceil or ceilings(device_info, peaks_dir)
    link = result.bandwidth_ceiling or "memory"
    dtype = result.flops_dtype
    peak_gbps = ceil.bandwidth.get(link)
    peak_tflops = ceil.tflops.get(dtype) if dtype else None
    result.peak_source = ceil.source([link] + ([dtype] if dtype else []))
    result.peaks_used = {"gbps": peak_gbps, "bandwidth_ceiling": link, "tflops": peak_tflops, "flops_dtype": dtype}
    for v in result.variants:
        if v.gbps is not None and peak_gbps:
            v.fraction_of_peak_bandwidth = v.gbps / peak_gbps
        if v.tflops is not None and peak_tflops:
            v.fraction_of_peak_flops = v.tflops / peak_tflops
    threads = result.environment.get("cpu", {}).get("threads")
    for name, why in implausible(result, ceil, device_info, threads).items():
        result.variant(name).fail(f"implausible: {why}")


# --- tables: each measured figure beside every datasheet row ------------------------------------------------

def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "TFLOP/s" and value < 1:
        return f"{value * 1e3:.3g} GFLOP/s"
    return f"{value:.4g} {unit}"


def comparison_rows(peaks: dict, keys: list[str] | None = None, how: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows: figure, measured value, then 'datasheet (measured as % of it)' per GPU in `keys`."""
    keys = list(DATASHEET) if keys is None else keys
    header = ["figure", "measured"] + keys + (["how"] if how else [])
    rows = []
    for name, entry in peaks.get("figures", {}).items():
        value, unit, column = entry.get("value"), entry.get("unit", ""), entry.get("datasheet")
        cells = [entry.get("what", name), _fmt(value, unit)]
        for key in keys:
            sheet = DATASHEET[key].get(column) if column else None
            cells.append("-" if not sheet or value is None else f"{sheet:.4g} ({value / sheet:.0%})")
        rows.append(cells + ([entry.get("how", "")] if how else []))
    return header, rows


def markdown_table(peaks: dict, all_gpus: bool = False) -> str:
    """The README's peak table, generated from a recorded peaks file (never typed by hand)."""
    from harness import report

    prov = peaks.get("provenance", {})
    dev, versions = prov.get("device", {}), prov.get("versions", {})
    key = datasheet_key(dev.get("name", ""))
    keys = list(DATASHEET) if all_gpus else ([key] if key else [])
    header, rows = comparison_rows(peaks, keys, how=True)
    if not all_gpus and key:
        header[2] = f"{key} datasheet (measured as %)"
    caption = (f"Measured on {dev.get('name', '?')} ({prov.get('started_at', '?')}, git {prov.get('git_sha')}, "
               f"torch {versions.get('torch')}, CUDA {dev.get('cuda')}, driver {dev.get('driver')}"
               + (", --quick" if peaks.get("quick") else "") + "). Datasheet figures are NVIDIA's, dense.")
    skipped = [f"- not measured: {name}: {why}" for name, why in peaks.get("skipped", {}).items()]
    return "\n".join([caption, "", report.markdown_table(header, rows)] + ([""] + skipped if skipped else [])) + "\n"
