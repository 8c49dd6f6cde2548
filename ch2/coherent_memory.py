"""Coherent host memory (NVLink-C2C): the GPU reads pageable host memory in place vs copying it first.

On Grace Hopper and Grace Blackwell the GPU reaches the CPU's memory over NVLink-C2C (the book's
~900 GB/s) through the host's own page tables (ATS): a kernel can read an ordinary `malloc`ed (pageable)
buffer directly, with no copy, no pinning and no migration. The baseline is the copy a discrete GPU
needs (`tensor.to("cuda")` from pageable memory); the optimized variant reads the same bytes in place.
On a discrete GPU over PCIe (the H100/H200 PCIe and SXM boards) the GPU cannot read pageable memory at
all, and this example is skipped with that reason: `python -m ch2.hardware_info` reports which memory
model a node has. (With HMM, Linux's software path, the in-place read also works, by migrating pages.)

Bound: one pass over the buffer across the CPU-GPU link; GB/s are against the measured host-to-device
figure of the node (C2C where present).
"""
from dataclasses import dataclass

import torch

from harness import Example, Requires, main

NUMEL = {"tiny": 1 << 16, "small": 8 << 20, "full": 64 << 20}


@dataclass(frozen=True)
class RequiresCoherentHost(Requires):
    """Needs a GPU that reads pageable host memory (CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS)."""

    def unmet(self, device: torch.device) -> str | None:
        reason = super().unmet(device)
        if reason:
            return reason
        from ch2.hardware_info import cuda_driver_attributes

        index = device.index if device.index is not None else torch.cuda.current_device()
        gpus = {g["index"]: g for g in cuda_driver_attributes().get("gpus", [])}
        if not gpus.get(index, {}).get("pageable_memory_access"):
            return ("needs a GPU that reads pageable host memory (NVLink-C2C/ATS as on Grace Hopper/Blackwell, "
                    "or HMM); this GPU is discrete: explicit copies or managed memory only")
        return None


def setup(size, device, seed):
    g = torch.Generator().manual_seed(seed)
    return {"src": torch.randn(NUMEL[size], generator=g), "device": device}


def consume(x: torch.Tensor) -> torch.Tensor:
    return x.mul(2.0).add_(1.0)


def copy_then_compute(x):
    return consume(x["src"].to(x["device"]))


def read_in_place(x):
    from ch2.kernels import ext

    index = x["device"].index if x["device"].index is not None else torch.cuda.current_device()
    return consume(ext().pageable_as_cuda(x["src"], index))


EXAMPLE = Example(
    title="Coherent host memory: read pageable memory in place (C2C) vs copy it first",
    setup=setup,
    baseline=copy_then_compute,
    baseline_name="copy_then_compute",
    optimized={"read_in_place": read_in_place},
    bytes_moved=lambda x: x["src"].numel() * 4,
    bandwidth_ceiling="h2d",
    requires=RequiresCoherentHost(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)
