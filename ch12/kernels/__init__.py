"""This chapter's CUDA kernels, built for the GPU at hand on first use (then cached).

`ext()` is the usual extension: every *.cu here plus binding.cpp (see harness/cuda_build.py).

`rdc()` is the rest: kernels that launch kernels (dynamic parallelism, CDP2) or graphs (device graph
launch) need relocatable device code (`nvcc -rdc=true`), a device-link step and the device runtime
library (`-lcudadevrt`), which torch's extension builder does not do for a JIT build. So rdc/*.cu are
built here by nvcc alone into a shared library, cached the same way (a key over the sources, nvcc's
version, the target and the flags, under build/extensions/), and called through ctypes: each export
takes raw pointers, sizes and a stream, as every launcher in this repository does. CI compiles rdc/*.cu
with plain `nvcc -c` too; without -rdc the device-side launches compile out and the launchers return
cudaErrorNotSupported. tests/test_ch11_ch12.py also builds the library with -rdc=true (no GPU needed).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
from pathlib import Path

from harness import cuda_build
from harness.cuda_build import CudaBuildError, load_dir

HERE = Path(__file__).parent
RDC_DIR = HERE / "rdc"
RDC_FLAGS = ("-std=c++17", "-rdc=true", "-shared", "-Xcompiler", "-fPIC")


def ext():
    """The compiled module: every *.cu here plus binding.cpp."""
    return load_dir(HERE)


def rdc_sources() -> list[Path]:
    return sorted(RDC_DIR.glob("*.cu"))


def rdc_command(nvcc: str, arch: str, out: Path) -> list[str]:
    """One nvcc call: compile with -rdc=true, device-link, and link a shared library with cudadevrt."""
    return [nvcc, *cuda_build.NVCC_FLAGS, *RDC_FLAGS, cuda_build.gencode(arch), "-I", str(cuda_build.INCLUDE_DIR),
            *map(str, rdc_sources()), "-lcudadevrt", "-o", str(out)]


def _key(nvcc: str, arch: str) -> str:
    h = hashlib.sha256()
    for path in sorted([*rdc_sources(), *RDC_DIR.glob("*.h"), *HERE.glob("*.cuh"), *cuda_build.INCLUDE_DIR.rglob("*.cuh")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    for part in (cuda_build.nvcc_version(nvcc), platform.machine(), arch, *cuda_build.NVCC_FLAGS, *RDC_FLAGS):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:16]


def build_rdc(arch: str, nvcc: str | None = None, root: Path | None = None) -> Path:
    """Build (or find built) the device-runtime library for `arch` ('sm_90'); its path."""
    nvcc = nvcc or cuda_build.find_nvcc()
    if nvcc is None:
        raise CudaBuildError("nvcc not found (set CUDA_HOME, or put nvcc on PATH)")
    folder = (root or cuda_build.BUILD_ROOT) / f"aisp_ch12_rdc-{_key(nvcc, arch)}"
    lib = folder / "libaisp_ch12_rdc.so"
    if lib.exists():
        return lib
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"lib.{os.getpid()}.tmp.so"  # built aside, then renamed: a concurrent build cannot see half a file
    cmd = rdc_command(nvcc, arch, partial)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        (folder / "build_error.log").write_text(proc.stdout + proc.stderr + "\n$ " + " ".join(cmd))
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:300])
        raise CudaBuildError(f"building ch12/kernels/rdc for {arch} failed: {first} (log: {folder / 'build_error.log'})")
    os.replace(partial, lib)
    return lib


class Rdc:
    """The library's exports as functions of torch tensors, on PyTorch's current stream."""

    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        self.lib.aisp_error_string.restype = ctypes.c_char_p
        ptr, i32, i64, f32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_float
        self.lib.aisp_mariani_silver_cdp.argtypes = [ptr, i32, f32, f32, f32, f32, i32, ptr]
        self.lib.aisp_route_host.argtypes = [ptr, ptr, i64, ptr]
        self.lib.aisp_route_device.argtypes = [ptr, ptr, i64, ptr]
        if not self.lib.aisp_cdp_supported():
            raise CudaBuildError(f"{path} was built without -rdc=true")

    def _check(self, err: int, what: str) -> None:
        if err != 0:
            line = self.lib.aisp_error_line()
            where = f" (rdc/device_graph_launch.cu line {line})" if line and what == "route" else ""
            raise RuntimeError(f"{what} failed: {self.lib.aisp_error_string(err).decode()}{where}")

    @staticmethod
    def _stream():
        import torch
        return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    def mariani_silver_cdp(self, size: int, x0: float, y0: float, x1: float, y1: float, max_dwell: int):
        import torch
        dwells = torch.empty(size, size, dtype=torch.int32, device="cuda")
        self._check(self.lib.aisp_mariani_silver_cdp(dwells.data_ptr(), size, x0, y0, x1, y1, max_dwell, self._stream()),
                    "mariani_silver_cdp")
        return dwells

    def route(self, x, on_device: bool):
        import torch
        if not (x.is_cuda and x.dtype == torch.float32 and x.is_contiguous() and x.dim() == 1):
            raise ValueError("x must be a contiguous 1-D float32 CUDA tensor")
        y = torch.empty_like(x)
        fn = self.lib.aisp_route_device if on_device else self.lib.aisp_route_host
        self._check(fn(x.data_ptr(), y.data_ptr(), x.numel(), self._stream()), "route")
        return y


@functools.cache
def rdc() -> Rdc:
    """The device-runtime library, built for this GPU on first use."""
    import torch

    if not torch.cuda.is_available():
        raise CudaBuildError("building CUDA kernels needs a CUDA GPU, and torch sees none")
    arch = cuda_build.device_arch(torch.cuda.get_device_capability(), [])
    return Rdc(build_rdc(arch))
