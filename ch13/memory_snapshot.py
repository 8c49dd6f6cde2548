"""A memory snapshot of one training step, drawn by our code: allocated bytes over the step, phase by phase.

    python -m ch13.memory_snapshot --size tiny|small|full --out DIR

`torch.cuda.memory._record_memory_history()` makes the caching allocator log every action (alloc, free,
segment alloc/free) with the Python stack that caused it; `_snapshot()` returns that log with the
allocator's segments. The second step of a training run is recorded (the first allocates the AdamW
state once), and the log's length is noted between the phases (data, forward, backward, optimizer), so
the picture can mark them. DIR gets:
- `memory_timeline.png`: allocated GiB against allocator event, the phases shaded, the peak marked: the
  sawtooth of a step: weights + optimizer state as the floor, activations piling up through the forward,
  released layer by layer in the backward while gradients appear, the optimizer's temporaries last;
- `memory_snapshot.pickle`: the raw snapshot, for https://pytorch.org/memory_viz (when under 64 MiB);
- `memory_snapshot.json`: the figures (peak, floor, per-phase peak and growth, segments) with provenance.

Bound: at `full` the floor is 1.1 B x (2 weight + 4 AdamW state) bytes = 6.6 GB in bf16 (+ 2.2 GB of
gradients during the backward and optimizer); activations per layer scale with batch x seq x width.
Needs a CUDA GPU for the recording; the drawing (`timeline`, `draw`) works on any snapshot dict.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

GIB = 1 << 30


def timeline(trace: list[dict], start_bytes: int = 0) -> list[int]:
    """Allocated bytes after each trace entry (alloc adds, free_requested subtracts), from `start_bytes`."""
    live, out = start_bytes, []
    for e in trace:
        if e["action"] == "alloc":
            live += e["size"]
        elif e["action"] == "free_requested":
            live -= e["size"]
        out.append(live)
    return out


def phase_figures(curve: list[int], marks: dict[str, int], start_bytes: int) -> dict:
    """Per phase (events from the previous mark to this one): peak and net growth, in GiB."""
    out, prev, prev_bytes = {}, 0, start_bytes
    for name, end in marks.items():
        part = curve[prev:end] or [prev_bytes]
        out[name] = {"events": end - prev, "peak_gib": max(part) / GIB, "growth_gib": (part[-1] - prev_bytes) / GIB}
        prev, prev_bytes = end, part[-1]
    return out


def draw(curve: list[int], marks: dict[str, int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(range(len(curve)), [b / GIB for b in curve], color="tab:blue", lw=1.2)
    colors = ("tab:gray", "tab:green", "tab:orange", "tab:purple", "tab:red")
    prev = 0
    for i, (name, end) in enumerate(marks.items()):
        ax.axvspan(prev, max(end, prev + 0.5), color=colors[i % len(colors)], alpha=0.15, label=name)
        prev = end
    if curve:
        peak = max(range(len(curve)), key=curve.__getitem__)
        ax.annotate(f"peak {curve[peak] / GIB:.2f} GiB", (peak, curve[peak] / GIB), textcoords="offset points",
                    xytext=(-60, 8))
    ax.set_xlabel("allocator event (alloc / free) in one training step")
    ax.set_ylabel("allocated (GiB)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def record_step(size: str) -> tuple[dict, dict[str, int], int]:
    """(snapshot, {phase: trace length at its end}, allocated bytes when recording started)."""
    import torch

    from ch13.train_common import host_batch, loss_fn, make_model, make_optimizer, train_step

    device = torch.device("cuda")
    model = make_model(size, device)
    opt = make_optimizer(model, "fused")
    gen = torch.Generator().manual_seed(1)
    train_step(model, opt, *host_batch(size, model.cfg.vocab, gen), device)  # AdamW state allocated here
    torch.cuda.synchronize()
    start = torch.cuda.memory_allocated()
    tokens, targets = host_batch(size, model.cfg.vocab, gen)
    mem = torch.cuda.memory
    mem._record_memory_history(max_entries=1_000_000, stacks="python")  # C++ stacks: slow to symbolize
    marks: dict[str, int] = {}

    def mark(name):
        torch.cuda.synchronize()
        marks[name] = len(mem._snapshot()["device_traces"][device.index or 0])

    try:
        tokens, targets = tokens.to(device), targets.to(device)
        mark("data")
        loss = loss_fn(model, tokens, targets)
        mark("forward")
        loss.backward()
        mark("backward")
        opt.step()
        opt.zero_grad(set_to_none=True)
        mark("optimizer")
        snap = mem._snapshot()
    finally:
        mem._record_memory_history(enabled=None)
    return snap, marks, start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "small", "full"), default="full")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("memory_snapshot: needs a CUDA GPU (the allocator's history is CUDA's)", file=sys.stderr)
        return 2
    from ch13.train_common import CONFIGS
    from harness.device import provenance

    snap, marks, start = record_step(args.size)
    trace = [e for e in snap["device_traces"][torch.cuda.current_device()]]
    curve = timeline(trace, start)
    args.out.mkdir(parents=True, exist_ok=True)
    n = CONFIGS[args.size].n_params()
    draw(curve, marks, args.out / "memory_timeline.png",
         f"one training step, decoder {n / 1e6:.0f} M params, bf16, fused AdamW ({torch.cuda.get_device_name()})")
    raw = pickle.dumps(snap)
    if len(raw) < 64 << 20:
        (args.out / "memory_snapshot.pickle").write_bytes(raw)
    figures = {"start_gib": start / GIB, "peak_gib": max(curve) / GIB if curve else None, "events": len(trace),
               "segment_allocs": sum(e["action"] == "segment_alloc" for e in trace),
               "phases": phase_figures(curve, marks, start),
               "max_memory_allocated_gib": torch.cuda.max_memory_allocated() / GIB}
    (args.out / "memory_snapshot.json").write_text(json.dumps(
        {"provenance": provenance(torch.device("cuda"), size=args.size), "n_params": n, **figures}, indent=1))
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
