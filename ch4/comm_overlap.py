"""How much of a step's communication ran under computation, read from a torch profiler trace.

The trace is the Chrome JSON `torch.profiler` exports; its GPU kernels are parsed by `ch11.timeline`.
NCCL's collectives are kernels too (`ncclDevKernel_AllReduce...`, `ncclKernel_...`), on NCCL's own
stream. The overlap fraction is the part of the communication kernels' time during which at least one
computation kernel ran on the same GPU, over the communication time: 0 means every all-reduce ran alone
(exposed), 1 means all of it was hidden behind backward. HTA's "communication computation overlap" is
the same ratio. `exposed_us` is the communication time nothing covered: the part a step pays for.
A CPU run (gloo) has no GPU kernels: the figure is None, with the reason.
"""
from __future__ import annotations

from ch11.timeline import GpuOp, covered, gpu_ops, load_trace, merge


def is_comm(op: GpuOp) -> bool:
    return op.kind == "kernel" and "nccl" in op.name.lower()


def overlap(ops: list[GpuOp]) -> dict:
    comm = [o for o in ops if is_comm(o)]
    compute = [o for o in ops if o.kind == "kernel" and not is_comm(o)]
    if not comm:
        return {"overlap_fraction": None, "reason": "no communication kernels in the trace (a CPU/gloo run has none)",
                "comm_us": 0.0, "compute_us": sum(o.dur_us for o in compute), "exposed_us": 0.0, "comm_kernels": 0}
    busy = {d: merge([(o.start_us, o.end_us) for o in compute if o.device == d]) for d in {o.device for o in ops}}
    # Concurrent communication kernels count once: the union of their intervals, per device.
    comm_spans = {d: merge([(o.start_us, o.end_us) for o in comm if o.device == d]) for d in {o.device for o in comm}}
    comm_us = sum(e - s for spans in comm_spans.values() for s, e in spans)
    hidden = sum(covered(s, e, busy.get(d, [])) for d, spans in comm_spans.items() for s, e in spans)
    return {"overlap_fraction": hidden / comm_us if comm_us else None, "reason": None, "comm_us": comm_us,
            "compute_us": sum(e - s for spans in busy.values() for s, e in spans), "exposed_us": comm_us - hidden,
            "comm_kernels": len(comm)}


def trace_overlap(path) -> tuple[dict, list[GpuOp]]:
    ops = gpu_ops(load_trace(path))
    return overlap(ops), ops


def draw(panels: list[tuple[str, list[GpuOp]]], path, title: str = ""):
    """One timeline per panel: a lane per stream, computation kernels green, NCCL kernels orange."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    colors = {"compute": "#2ca02c", "comm": "#ff7f0e"}
    lanes_per_panel = [sorted({o.stream for o in ops if o.kind == "kernel"}) or [0] for _, ops in panels]
    heights = [len(lanes) + 1 for lanes in lanes_per_panel]
    fig = Figure(figsize=(11, 1.0 + 0.45 * sum(heights)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (label, ops), lanes in zip(axes, panels, lanes_per_panel, strict=True):
        kernels = [o for o in ops if o.kind == "kernel"]
        t0 = min((o.start_us for o in kernels), default=0.0)
        for i, lane in enumerate(lanes):
            for what in ("compute", "comm"):
                boxes = [((o.start_us - t0) / 1e3, o.dur_us / 1e3) for o in kernels
                         if o.stream == lane and (is_comm(o) == (what == "comm"))]
                if boxes:
                    ax.broken_barh(boxes, (i - 0.38, 0.76), facecolors=colors[what], edgecolor="none")
        ax.set_yticks(range(len(lanes)))
        ax.set_yticklabels([f"stream {s}" for s in lanes])
        ax.set_ylim(len(lanes) - 0.5, -0.5)
        ax.set_title(label, fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time since the first kernel (ms)")
    fig.legend(handles=[Patch(facecolor=colors["compute"], label="computation kernel"),
                        Patch(facecolor=colors["comm"], label="NCCL kernel")], loc="upper right", ncol=2, fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    return path
