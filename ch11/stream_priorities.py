"""Stream priorities: a latency-critical chain of small steps while a large kernel fills the GPU.

A background job (one elementwise kernel over ~2 GiB, thousands of short blocks) is queued first on a
low-priority stream; then a latency-critical loop runs: `steps` small steps (a matmul and an
activation on one token), each waited for by the host, as a decode loop waits for its token. The block
scheduler hands free SM slots to the highest-priority stream with work; it never stops a running
block. With equal priorities the first urgent step waits until every block of the background kernel
has been dispatched, so the urgent loop starts only when the background is nearly done, and the two
run one after the other. On a high-priority stream each urgent kernel takes the next slot that frees
up (the background's blocks last microseconds), so the loop runs beside the background.

Both variants do the same work; the call ends when both are done. Bound: equal priority ~ background
+ urgent loop; high priority ~ max(background, urgent loop). The per-step latency itself is measured
by `python -m ch11.priority_latency` (host wall time of each step, with and without priority).
"""
import time

import torch

from harness import Example, Requires, main

# (background floats, token batch, features, urgent steps)
SIZES = {"tiny": (1 << 12, 1, 16, 4), "small": (1 << 26, 4, 256, 20), "full": (1 << 29, 8, 512, 50)}


def setup(size, device, seed):
    n_bg, batch, features, steps = SIZES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    return {"background": torch.randn(n_bg, device=device, generator=g),
            "token": torch.randn(batch, features, device=device, generator=g),
            "weight": torch.randn(features, features, device=device, generator=g) / features**0.5,
            "steps": steps}


def urgent_loop(token: torch.Tensor, weight: torch.Tensor, steps: int, stream, latencies: list | None = None):
    y = token
    for _ in range(steps):
        t0 = time.perf_counter()
        with torch.cuda.stream(stream):
            y = torch.tanh(y @ weight)
        stream.synchronize()             # the host needs this step's result before it issues the next
        if latencies is not None:
            latencies.append(time.perf_counter() - t0)
    return y


_STREAMS: dict[tuple[int, bool], tuple[torch.cuda.Stream, torch.cuda.Stream]] = {}


def streams(device: torch.device, urgent_high: bool) -> tuple[torch.cuda.Stream, torch.cuda.Stream]:
    """(background, urgent): the background at the default (lowest) priority; the urgent stream at the
    highest priority the device offers, or at the default too."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    key = (index, urgent_high)
    if key not in _STREAMS:
        highest = min(torch.cuda.Stream.priority_range())  # lower numbers run first
        _STREAMS[key] = (torch.cuda.Stream(device=index, priority=0),
                         torch.cuda.Stream(device=index, priority=highest if urgent_high else 0))
    return _STREAMS[key]


def run(x, urgent_high: bool, latencies: list | None = None):
    background, urgent = streams(x["background"].device, urgent_high)
    main_stream = torch.cuda.current_stream()
    background.wait_stream(main_stream)
    urgent.wait_stream(main_stream)
    with torch.cuda.stream(background):
        bg_out = torch.sin(x["background"])      # queued first: fills every SM for a while
    y = urgent_loop(x["token"], x["weight"], x["steps"], urgent, latencies)
    main_stream.wait_stream(background)
    main_stream.wait_stream(urgent)
    for t in (y, bg_out):                        # made on side streams, handed to the caller's stream
        t.record_stream(main_stream)
    return y, bg_out


# no edge distributions: the variants differ only in stream priority; both run the same PyTorch ops
# (a matmul and tanh), so no input value separates them.
EXAMPLE = Example(
    title="Stream priorities: a latency-critical loop beside a large kernel, default vs high priority",
    setup=setup,
    baseline=lambda x: run(x, urgent_high=False),
    baseline_name="same_priority",
    optimized={"high_priority": lambda x: run(x, urgent_high=True)},
    requires=Requires(cuda=True),  # stream priorities are a property of the GPU's block scheduler
)

if __name__ == "__main__":
    main(EXAMPLE)
