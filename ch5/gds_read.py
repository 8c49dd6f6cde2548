"""GPUDirect Storage: read a file straight into GPU memory (kvikio/cuFile) vs read to host, then copy.

The usual path reads a file into a host buffer (here a pinned one, the best case) and then copies it to
the GPU: every byte crosses host memory twice. With GPUDirect Storage (GDS) cuFile lets the NVMe or
network storage DMA straight into GPU memory; `kvikio` is its Python interface, and splits a read into
parallel tasks. Where the node has no GDS driver (the `nvidia-fs` kernel module) or the file system
does not support it, cuFile runs in *compatibility mode*: kvikio then reads through POSIX into its own
pinned bounce buffers and copies, in parallel threads. Run this file directly to see which mode this
node uses; the result is what this node does, whichever it is.

Each call first drops the file's pages from the page cache (`posix_fadvise(DONTNEED)`, allowed on one's
own file without privileges), so both variants read from storage, not from memory. File size follows
--size (1, 32 and 256 MiB): small reads are dominated by per-call setup, large ones by bandwidth.

Bound: the storage device's read bandwidth, or the host link (~55 GB/s pinned on the H200) if the
storage is faster; GB/s below are against the measured host-to-device ceiling. The book's figure is
2-3x faster loading with GDS on a node that has it.
"""
import functools
import os
import tempfile
import weakref

import torch

from harness import Example, Requires, main

NBYTES = {"tiny": 1 << 20, "small": 32 << 20, "full": 256 << 20}


class DataFile:
    """A file of random bytes in a temporary folder, removed when this object is dropped."""

    def __init__(self, nbytes: int, seed: int):
        self._tmp = tempfile.TemporaryDirectory(prefix="aisp_gds_")
        self.path = os.path.join(self._tmp.name, "data.bin")
        g = torch.Generator().manual_seed(seed)
        chunk = 64 << 20
        with open(self.path, "wb") as f:
            for start in range(0, nbytes, chunk):
                n = min(chunk, nbytes - start)
                f.write(torch.randint(0, 256, (n,), dtype=torch.uint8, generator=g).numpy().tobytes())
        self.nbytes = nbytes
        weakref.finalize(self, self._tmp.cleanup)

    def drop_from_page_cache(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


@functools.lru_cache(maxsize=1)
def _staging(nbytes: int) -> torch.Tensor:
    """The baseline's pinned bounce buffer: scratch it owns, allocated once (pinning is slow), never an input."""
    return torch.empty(nbytes, dtype=torch.uint8).pin_memory()


def setup(size, device, seed):
    f = DataFile(NBYTES[size], seed)
    return {"file": f, "device": device}


def read_then_copy(x):
    f = x["file"]
    f.drop_from_page_cache()
    torch.cuda.current_stream(x["device"]).synchronize()   # the staging buffer is free again
    staging = _staging(f.nbytes)
    with open(f.path, "rb", buffering=0) as fh:
        view = memoryview(staging.numpy())
        got = 0
        while got < f.nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise EOFError(f"{f.path}: short read at {got} of {f.nbytes}")
            got += n
    return staging.to(x["device"], non_blocking=True)


def kvikio_to_gpu(x):
    import kvikio

    f = x["file"]
    f.drop_from_page_cache()
    out = torch.empty(f.nbytes, dtype=torch.uint8, device=x["device"])
    with kvikio.CuFile(f.path, "r") as fh:
        n = fh.read(out)           # parallel pread tasks into GPU memory (or bounce buffers in compat mode)
    if n != f.nbytes:
        raise EOFError(f"{f.path}: kvikio read {n} of {f.nbytes} bytes")
    return out


EXAMPLE = Example(
    title="GPUDirect Storage: kvikio (cuFile) into GPU memory vs read to pinned host memory, then copy",
    setup=setup,
    baseline=read_then_copy,
    baseline_name="read_then_copy",
    optimized={"kvikio_to_gpu": kvikio_to_gpu},
    bytes_moved=lambda x: x["file"].nbytes,
    bandwidth_ceiling="h2d",
    requires=Requires(cuda=True, packages=("kvikio",)),
    fresh_inputs=False,   # setup writes the file: once per input set
)


def describe() -> dict:
    """Which path cuFile takes on this node: GDS proper, or compatibility mode, and why."""
    import kvikio
    import kvikio.defaults

    out = {"kvikio": getattr(kvikio, "__version__", "?")}
    for name in ("compat_mode", "is_compat_mode_preferred"):
        fn = getattr(kvikio.defaults, name, None)
        if callable(fn):
            try:
                out[name] = str(fn())
            except Exception as exc:
                out[name] = f"error: {exc}"
    try:
        from kvikio import cufile_driver
        props = cufile_driver.properties if hasattr(cufile_driver, "properties") else cufile_driver.DriverProperties()
        out["gds_available"] = bool(getattr(props, "is_gds_available", False))
        out["nvfs_major_version"] = getattr(props, "major_version", None)
    except Exception as exc:
        out["gds_available"] = False
        out["driver"] = f"cuFile driver not opened: {type(exc).__name__}: {str(exc)[:200]}"
    out["nvidia_fs_module"] = os.path.exists("/proc/driver/nvidia-fs")
    return out


if __name__ == "__main__":
    import importlib.util

    if torch.cuda.is_available() and importlib.util.find_spec("kvikio"):
        print("cuFile on this node:", describe())
    main(EXAMPLE)
