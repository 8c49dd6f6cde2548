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
