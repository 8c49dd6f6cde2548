"""Unified memory: page-fault migration vs prefetch vs advice, beside an explicit pinned copy.

Each call is one step of a producer/consumer loop: the host writes a fresh buffer, then the GPU reads
all of it once (y = 2x + 1). With managed memory (`cudaMallocManaged`) and no hints, the host's write
pulls the pages back to the host (the GPU touched them last step) and the kernel's first touch of each
page faults and migrates it: the transfer runs at the speed of fault handling, not of the link. A
prefetch (`cudaMemPrefetchAsync`, to the host before writing and to the GPU before the kernel) moves the
same bytes in bulk. Advice (`PreferredLocation = host`, `AccessedBy = GPU`) keeps the pages on the host
and maps them into the GPU, which then reads them across the link without any fault or migration. The
reference is what the same step looks like with explicit copies: write a pinned buffer, `copy_` to the GPU.

Bound: the bytes cross the host link once per call (GB/s here are against the measured pinned
host-to-device figure, 55 GB/s on the H200: 128 MiB takes at least 2.4 ms); the host's write of the
buffer is inside every variant's time alike. On a Grace Hopper/Blackwell node the GPU reads pageable
host memory coherently over NVLink-C2C; that path is `coherent_memory.py`, skipped where absent.
"""
import torch

from harness import Example, Requires, main

NUMEL = {"tiny": 1 << 16, "small": 8 << 20, "full": 32 << 20}  # float32: 256 KiB, 32 MiB, 128 MiB
ADVISE_PREFERRED_LOCATION, ADVISE_ACCESSED_BY = 3, 5           # cudaMemoryAdvise values
HOST = -1


def _ext():
    from ch2.kernels import ext
    return ext()


class ManagedBuffer:
    """One managed allocation, seen from the GPU (`dev`) and from the host (`host`): the step's staging buffer."""

    def __init__(self, numel: int, device: torch.device, advise_host_resident: bool = False):
        index = device.index if device.index is not None else torch.cuda.current_device()
        self.device_index = index
        self.dev = _ext().managed_empty(numel, index)
        self.host = _ext().host_view(self.dev)
        if advise_host_resident:
            _ext().advise(self.dev, ADVISE_PREFERRED_LOCATION, HOST)
            _ext().advise(self.dev, ADVISE_ACCESSED_BY, index)


def setup(size, device, seed):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(NUMEL[size], generator=g)
    n = src.numel()
    return {"src": src, "device": device,
            "fault": ManagedBuffer(n, device), "prefetch": ManagedBuffer(n, device),
            "advised": ManagedBuffer(n, device, advise_host_resident=True)}


_STAGING: dict[int, torch.Tensor] = {}


def _staging(numel: int) -> torch.Tensor:
    """The pinned staging buffer, allocated once per size (as a data loader keeps its own): not an input, since the
    step writes it."""
    if numel not in _STAGING:
        _STAGING[numel] = torch.empty(numel).pin_memory()
    return _STAGING[numel]


def consume(x: torch.Tensor) -> torch.Tensor:
    return x.mul(2.0).add_(1.0)


def _host_may_write(device):
    # The host must not rewrite the buffer while the last step's kernel or copy may still read it.
    torch.cuda.current_stream(device).synchronize()


def managed_faults(x):
    _host_may_write(x["device"])
    buf = x["fault"]
    buf.host.copy_(x["src"])           # pages fault back to the host
    return consume(buf.dev)            # and fault over to the GPU, page group by page group


def managed_prefetch(x):
    _host_may_write(x["device"])
    buf = x["prefetch"]
    _ext().prefetch(buf.dev, HOST)                 # bring the pages home in bulk before writing them
    torch.cuda.current_stream(x["device"]).synchronize()
    buf.host.copy_(x["src"])
    _ext().prefetch(buf.dev, buf.device_index)     # and send them to the GPU in bulk before the kernel
    return consume(buf.dev)


def managed_advised(x):
    _host_may_write(x["device"])
    buf = x["advised"]
    buf.host.copy_(x["src"])           # pages stay on the host (preferred location) ...
    return consume(buf.dev)            # ... and the GPU reads them over the link, mapped, without faults


def explicit_pinned_copy(x):
    _host_may_write(x["device"])
    staging = _staging(x["src"].numel())
    staging.copy_(x["src"])
    return consume(staging.to(x["device"], non_blocking=True))


EXAMPLE = Example(
    title="Unified memory: page faults vs prefetch vs advice, and an explicit copy",
    setup=setup,
    baseline=managed_faults,
    baseline_name="managed_faults",
    optimized={"managed_prefetch": managed_prefetch, "managed_advised_host_mapped": managed_advised},
    references={"explicit_pinned_copy": explicit_pinned_copy},
    bytes_moved=lambda x: x["src"].numel() * 4,   # each byte crosses the host link once
    bandwidth_ceiling="h2d",
    requires=Requires(cuda=True),
    fresh_inputs=False,   # three managed buffers and a pinned one per input set: too costly to remake per call
)


def describe() -> None:
    """Where the node stands: can the GPU use managed memory concurrently, or read pageable memory at all?"""
    from ch2.hardware_info import cuda_driver_attributes

    for gpu in cuda_driver_attributes().get("gpus", []):
        print(f"cuda:{gpu['index']}: concurrent managed access {gpu['concurrent_managed_access']}, "
              f"pageable memory access {gpu['pageable_memory_access']} "
              f"(via host page tables: {gpu['pageable_memory_access_uses_host_page_tables']})\n  {gpu['memory_model']}")


if __name__ == "__main__":
    if torch.cuda.is_available():
        describe()
    main(EXAMPLE)
