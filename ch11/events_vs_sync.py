"""Fine-grained synchronization: a producer-consumer loop ordered by events vs by device-wide syncs.

A producer stream prepares item i (a few elementwise kernels) and a consumer stream uses it (a matmul
and an activation). The consumer must not start before its item is ready. `device_sync` makes sure of
that the blunt way: `torch.cuda.synchronize()` after each produced item, so the host stops until the
whole GPU is idle, then queues the consumer; the GPU idles while the host wakes up and launches, and
producer i+1 can never run beside consumer i. `event_wait` records an event after item i on the
producer stream and makes the consumer stream wait for that event on the GPU: the host never blocks,
producer i+1 runs beside consumer i, and the only ordering is the one the data needs. Because item i
is allocated on the producer stream and read on the consumer stream, it is handed to the caching
allocator with `record_stream` so its memory is not reused before the consumer is done with it.
`one_stream` (no events at all, everything in stream order) shows how much of the gain is just not
blocking the host.

Bound: launch- and latency-bound at these sizes: device_sync pays a host round trip (~10-20 us) per
item; event_wait approaches max(producer, consumer) GPU time per item.
"""
import torch

from harness import Example, Requires, main

# (items, rows per item, features)
SIZES = {"tiny": (4, 8, 16), "small": (16, 256, 512), "full": (64, 512, 1024)}


def setup(size, device, seed):
    items, rows, features = SIZES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    return {"items": torch.randn(items, rows, features, device=device, generator=g),
            "weight": torch.randn(features, features, device=device, generator=g) / features**0.5}


def produce(item: torch.Tensor) -> torch.Tensor:
    return torch.sin(item) * 2.0 + 0.5


def consume(ready: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.tanh(ready @ weight)


def one_stream(x):
    out = torch.empty_like(x["items"])
    for i in range(x["items"].shape[0]):
        out[i] = consume(produce(x["items"][i]), x["weight"])
    return out


_STREAMS: dict[int, tuple[torch.cuda.Stream, torch.cuda.Stream, torch.cuda.Event]] = {}


def _streams(device: torch.device) -> tuple[torch.cuda.Stream, torch.cuda.Stream, torch.cuda.Event]:
    """Producer and consumer streams and one event, made once per device. One event is enough: a
    wait_event waits for the event's state when it is issued, so recording it again later is safe."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _STREAMS:
        _STREAMS[index] = (torch.cuda.Stream(device=index), torch.cuda.Stream(device=index), torch.cuda.Event())
    return _STREAMS[index]


def device_sync(x):
    producer, consumer, _ = _streams(x["items"].device)
    out = torch.empty_like(x["items"])
    torch.cuda.synchronize()  # inputs and out are ready before either stream touches them
    for i in range(x["items"].shape[0]):
        with torch.cuda.stream(producer):
            ready = produce(x["items"][i])
        torch.cuda.synchronize()  # the host waits for the whole device: item i (and everything else) is done
        with torch.cuda.stream(consumer):
            out[i] = consume(ready, x["weight"])
        ready.record_stream(consumer)  # producer i+1 must not get this memory while consumer i reads it
    torch.cuda.current_stream().wait_stream(consumer)
    return out


def event_wait(x):
    producer, consumer, item_done = _streams(x["items"].device)
    main_stream = torch.cuda.current_stream()
    out = torch.empty_like(x["items"])
    producer.wait_stream(main_stream)
    consumer.wait_stream(main_stream)
    for i in range(x["items"].shape[0]):
        with torch.cuda.stream(producer):
            ready = produce(x["items"][i])
            item_done.record(producer)
        consumer.wait_event(item_done)       # the GPU orders the two streams; the host goes on
        with torch.cuda.stream(consumer):
            out[i] = consume(ready, x["weight"])
        ready.record_stream(consumer)        # made on the producer, used on the consumer: keep it until then
    main_stream.wait_stream(consumer)        # the caller's stream sees the finished output
    return out


# no edge distributions: the variants differ only in how the streams wait; the math (sin, a matmul, tanh) is
# the same PyTorch ops in each, so no input value separates a right variant from a wrong one.
EXAMPLE = Example(
    title="Producer-consumer streams: waiting on events vs device-wide synchronize",
    setup=setup,
    baseline=device_sync,
    baseline_name="device_sync",
    optimized={"event_wait": event_wait, "one_stream": one_stream},
    flops=lambda x: 2 * x["items"].numel() * x["weight"].shape[0],
    flops_dtype="fp32",
    requires=Requires(cuda=True),  # streams and events have no CPU meaning
)

if __name__ == "__main__":
    main(EXAMPLE)
