"""Building CUDA kernels into Python modules: on first use, cached by what went into the build.

The layout every CUDA example follows:

* An *extension* is a folder (``chN/kernels/``) holding kernel files ``*.cu`` and one ``binding.cpp``.
  Helpers every chapter shares live in ``harness/include/aisp/`` (``launch.cuh`` for kernels,
  ``binding.h`` for bindings), which every build puts on the include path.
* A ``.cu`` file holds kernels and ``extern "C"`` launchers that take raw pointers, sizes and a
  ``cudaStream_t`` and return a ``cudaError_t``. It includes CUDA headers only, so plain ``nvcc -c``
  compiles it anywhere (CI does so for sm_80, sm_90 and sm_100 on a machine with no GPU).
* ``binding.cpp`` declares those launchers and wraps each as a function of torch tensors (checking
  device, dtype and layout, passing the current stream). Only it needs torch's headers.
* A ``.cu`` that needs an arch-specific target (wgmma, setmaxnreg: ``sm_90a``) says so in a line
  ``// aisp: arch sm_90a``; CI adds that target, and a build on that GPU uses it.
* A ``.cu`` that includes a header-only library says so in a line ``// aisp: include cutlass``; the build
  (and CI) then add that library's include folders, found in its installed Python package (CUTLASS: the
  ``nvidia-cutlass`` wheel's ``cutlass_library``), or stop with a one-line CudaBuildError naming the wheel.
* CI compiles a ``.cu`` for sm_80, sm_90 and sm_100 plus its marked targets, unless a line
  ``// aisp: ci-archs sm_90a`` lists the only targets CI compiles it for: a CUTLASS instantiation costs up to
  a minute of nvcc, and each further target (an empty stub, or the same code again) adds time, not checks.
* A ``.cu`` may carry ``#ifdef AISP_STANDALONE ... int main() ... #endif``: a program that runs and
  checks itself (``nvcc -DAISP_STANDALONE -o prog file.cu && ./prog``); CI compiles it with that macro.

``load_dir(folder)`` builds (or finds in the cache) the extension for the GPU at hand and imports it.
Builds live in ``build/extensions/<name>-<key>``, where the key hashes the sources, nvcc's version,
torch's and Python's versions, the target architecture and the flags; a change to any of them is a
new folder, and an unchanged one is loaded without recompiling.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from harness.device import REPO_ROOT

BUILD_ROOT = REPO_ROOT / "build" / "extensions"
INCLUDE_DIR = Path(__file__).resolve().parent / "include"   # aisp/launch.cuh, aisp/binding.h: shared by every chapter
CI_ARCHS = ("sm_80", "sm_90", "sm_100")
BINDING = "binding.cpp"
# torch builds .cu files with these; CI uses them too, so that what compiles in CI compiles in torch.
TORCH_NVCC_DEFINES = ("-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                      "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__",
                      "--expt-relaxed-constexpr")
NVCC_FLAGS = ("-O3", "-lineinfo")  # -lineinfo: ncu can map stalls to source lines; torch picks the -std

_ARCH_MARK = re.compile(r"^\s*//\s*aisp:\s*arch\s+(.+?)\s*$", re.M)
_ARCH_NAME = re.compile(r"^sm_(\d+)(a?)$")
_INCLUDE_MARK = re.compile(r"^\s*//\s*aisp:\s*include\s+(.+?)\s*$", re.M)
_CI_ARCHS_MARK = re.compile(r"^\s*//\s*aisp:\s*ci-archs\s+(.+?)\s*$", re.M)


class CudaBuildError(RuntimeError):
    """No toolchain, no GPU, or a failed build; the message is one line that says which."""


# ---- facts about source files ------------------------------------------------------------------

def arch_markers(text: str) -> list[str]:
    """Arch-specific targets a .cu asks for with `// aisp: arch sm_90a` (several may be listed)."""
    archs = [a for line in _ARCH_MARK.findall(text) for a in line.replace(",", " ").split()]
    for arch in archs:
        if not _ARCH_NAME.match(arch):
            raise CudaBuildError(f"bad arch marker {arch!r}: write it like sm_90a")
    return archs


def ci_archs(text: str, archs: tuple[str, ...] = CI_ARCHS) -> list[str]:
    """The targets CI compiles a .cu for: `archs` plus its arch markers, or exactly those listed in its
    `// aisp: ci-archs ...` lines."""
    only = [a for line in _CI_ARCHS_MARK.findall(text) for a in line.replace(",", " ").split()]
    for arch in only:
        if not _ARCH_NAME.match(arch):
            raise CudaBuildError(f"bad ci-archs marker {arch!r}: write it like sm_90a")
    return list(dict.fromkeys(only or [*archs, *arch_markers(text)]))


def cutlass_include_dirs(package: str = "cutlass_library") -> tuple[list[Path], str]:
    """CUTLASS's header folders (cutlass/, cute/, and cutlass/util/ from its tools) and its version, from the
    installed `nvidia-cutlass` wheel, whose `cutlass_library` package carries the C++ sources."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CudaBuildError(f"this kernel needs the CUTLASS headers: pip install nvidia-cutlass "
                             f"(its {package} package carries them), then build again")
    source = Path(list(spec.submodule_search_locations)[0]) / "source"
    dirs = [source / "include", source / "tools" / "util" / "include"]
    if not (dirs[0] / "cutlass" / "cutlass.h").exists():
        raise CudaBuildError(f"{package} at {source.parent} has no source/include/cutlass/cutlass.h: "
                             "reinstall nvidia-cutlass")
    try:
        version = importlib.metadata.version("nvidia-cutlass")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return dirs, version


LIBRARIES = {"cutlass": cutlass_include_dirs}  # `// aisp: include NAME` -> () -> (include folders, version)


def include_markers(text: str) -> list[str]:
    """Header-only libraries a .cu asks for with `// aisp: include cutlass`."""
    names = [n for line in _INCLUDE_MARK.findall(text) for n in line.replace(",", " ").split()]
    for name in names:
        if name not in LIBRARIES:
            raise CudaBuildError(f"unknown library {name!r} in an `// aisp: include` line: known are "
                                 f"{', '.join(sorted(LIBRARIES))}")
    return list(dict.fromkeys(names))


def library_includes(texts: list[str]) -> tuple[list[str], list[str]]:
    """nvcc's -I flags for the libraries the sources ask for, and 'name version' strings for the cache key."""
    flags, versions = [], []
    for name in dict.fromkeys(n for text in texts for n in include_markers(text)):
        dirs, version = LIBRARIES[name]()
        flags += [f"-I{d}" for d in dirs]
        versions.append(f"{name} {version}")
    return flags, versions


def has_standalone_main(text: str) -> bool:
    return "AISP_STANDALONE" in text


def gencode(arch: str) -> str:
    """'sm_90a' -> '-gencode=arch=compute_90a,code=sm_90a' (machine code for exactly that GPU)."""
    m = _ARCH_NAME.match(arch)
    if not m:
        raise CudaBuildError(f"unknown arch {arch!r}: write it like sm_90 or sm_90a")
    return f"-gencode=arch=compute_{m[1]}{m[2]},code=sm_{m[1]}{m[2]}"


def device_arch(capability: tuple[int, int], markers: list[str]) -> str:
    """The target for a GPU: 'sm_90', or 'sm_90a' when a source needs the arch-specific features."""
    arch = f"sm_{capability[0]}{capability[1]}"
    return arch + "a" if arch + "a" in markers else arch


# ---- the cache key -----------------------------------------------------------------------------

def build_key(files: dict[str, bytes], *, compiler: str, torch_version: str, python: str, arch: str,
              flags: list[str]) -> str:
    """A hash of everything that changes the built module; the same inputs give the same key."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    for part in (compiler, torch_version, python, arch, *flags):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:16]


def build_dir(name: str, key: str, root: Path | None = None) -> Path:
    return (root or BUILD_ROOT) / f"{name}-{key}"


def _key_files(sources: list[Path]) -> dict[str, bytes]:
    """The sources plus any local headers beside them (a source may include them), by repo-relative name."""
    folders = {p.parent for p in sources}
    headers = {h for folder in folders for ext in ("*.cuh", "*.h", "*.hpp") for h in folder.glob(ext)}
    headers |= {h for h in INCLUDE_DIR.rglob("*") if h.suffix in (".cuh", ".h", ".hpp")}
    return {_repo_relative(p): p.read_bytes() for p in sorted(set(sources) | headers)}


def _repo_relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path.resolve())


# ---- the toolchain -----------------------------------------------------------------------------

def find_nvcc() -> str | None:
    """nvcc from CUDA_HOME (as torch finds it), else from PATH."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if not home:
        try:
            from torch.utils.cpp_extension import CUDA_HOME as home
        except ImportError:
            home = None
    if home and (Path(home) / "bin" / "nvcc").exists():
        return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc")


@functools.cache
def nvcc_version(nvcc: str) -> str:
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown"   # 'Build cuda_13.0.r13.0/compiler.36424714_0'


def _check_toolchain() -> str:
    """The nvcc torch will build with; a one-line CudaBuildError when something needed is missing."""
    import torch
    from torch.utils import cpp_extension

    if torch.version.cuda is None:
        raise CudaBuildError(f"this torch ({torch.__version__}) is a CPU-only build: CUDA kernels need a CUDA torch")
    if not torch.cuda.is_available():
        raise CudaBuildError("building CUDA kernels needs a CUDA GPU, and torch sees none")
    home = cpp_extension.CUDA_HOME  # where torch's builder looks for nvcc
    if not home or not (Path(home) / "bin" / "nvcc").exists():
        raise CudaBuildError("no CUDA toolchain: nvcc not found (set CUDA_HOME to the CUDA toolkit, or put nvcc on PATH)")
    if not cpp_extension.is_ninja_available():
        raise CudaBuildError("ninja not found: torch builds extensions with it (pip install ninja)")
    return str(Path(home) / "bin" / "nvcc")


# ---- building and loading ----------------------------------------------------------------------

def load(name: str, sources: list[str | Path], *, extra_cuda_cflags: list[str] = (), extra_cflags: list[str] = (),
         verbose: bool | None = None):
    """Build (or find built) the extension `name` from `sources` for the current GPU, and import it."""
    import torch
    from torch.utils import cpp_extension

    sources = [Path(s).resolve() for s in sources]
    missing = [str(s) for s in sources if not s.exists()]
    if missing:
        raise CudaBuildError(f"{name}: missing source files {', '.join(missing)}")
    nvcc = _check_toolchain()
    texts = [s.read_text() for s in sources if s.suffix == ".cu"]
    markers = [a for text in texts for a in arch_markers(text)]
    arch = device_arch(torch.cuda.get_device_capability(), markers)
    library_flags, library_versions = library_includes(texts)
    cuda_flags = [*NVCC_FLAGS, gencode(arch), *library_flags, *extra_cuda_cflags]
    cflags = ["-O3", *extra_cflags]
    key = build_key(_key_files(sources), compiler=nvcc_version(nvcc), torch_version=torch.__version__,
                    python=platform.python_version(), arch=arch, flags=cuda_flags + cflags + library_versions)
    folder = build_dir(name, key)
    folder.mkdir(parents=True, exist_ok=True)
    if verbose is None:
        verbose = os.environ.get("AISP_BUILD_VERBOSE", "") not in ("", "0")
    try:
        return cpp_extension.load(name=name, sources=[str(s) for s in sources], extra_cflags=cflags,
                                  extra_cuda_cflags=cuda_flags, extra_include_paths=[str(INCLUDE_DIR)],
                                  build_directory=str(folder), verbose=verbose)
    except Exception as exc:  # torch raises RuntimeError/CalledProcessError with the whole compiler log
        log = folder / "build_error.log"
        log.write_text(str(exc))
        raise CudaBuildError(f"building {name} for {arch} failed: {_first_error(str(exc))} (full log: {log})") from exc


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if re.search(r"\berror\b", line, re.I) and "Error building extension" not in line:
            return line.strip()[:300]
    return (log.strip().splitlines() or ["no output"])[0][:300]


def extension_name(folder: Path) -> str:
    """chN/kernels -> 'aisp_chN_kernels' (the module name, unique across the repository)."""
    rel = Path(_repo_relative(Path(folder)))
    parts = rel.parts if not rel.is_absolute() else rel.parts[-2:]
    return "aisp_" + re.sub(r"\W", "_", "_".join(parts))


def extension_sources(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not (folder / BINDING).exists():
        raise CudaBuildError(f"{folder} has no {BINDING}: an extension folder holds *.cu files and one {BINDING}")
    return sorted(folder.glob("*.cu")) + [folder / BINDING]


@functools.cache
def load_dir(folder: str | Path):
    """The extension in `folder` (every *.cu there plus binding.cpp), built for this GPU on first use."""
    folder = Path(folder).resolve()
    return load(extension_name(folder), extension_sources(folder))


def extension_dirs(root: Path = REPO_ROOT) -> list[Path]:
    """Every extension folder under the chapters: those holding a binding.cpp."""
    return sorted(p.parent for p in root.glob(f"ch*/**/{BINDING}"))


# ---- plain nvcc, for CI --------------------------------------------------------------------------

def nvcc_command(path: Path, out: Path, archs: tuple[str, ...] = CI_ARCHS, nvcc: str = "nvcc") -> list[str]:
    """One nvcc call that compiles `path` to the object `out` for every arch in `archs`, plus the
    arch-specific targets the file asks for (or only its `ci-archs`), with the include folders of the
    libraries it names, and -DAISP_STANDALONE when it has a standalone main."""
    text = Path(path).read_text()
    library_flags, _ = library_includes([text])
    return [nvcc, "-c", *NVCC_FLAGS, "-std=c++17", "--threads", "0", *TORCH_NVCC_DEFINES, "-I", str(INCLUDE_DIR),
            *library_flags, *(gencode(a) for a in ci_archs(text, archs)),
            *(["-DAISP_STANDALONE"] if has_standalone_main(text) else []), str(path), "-o", str(out)]


def compile_cu(path: Path, out_dir: Path, archs: tuple[str, ...] = CI_ARCHS, nvcc: str | None = None,
               timeout: float = 300) -> Path:
    """Compile one .cu with plain nvcc (no torch, no GPU needed); CudaBuildError with nvcc's output."""
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise CudaBuildError("nvcc not found (set CUDA_HOME, or put nvcc on PATH)")
    out = Path(out_dir) / (Path(path).stem + ".o")
    cmd = nvcc_command(Path(path), out, archs, nvcc)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise CudaBuildError(f"nvcc failed on {path}:\n{proc.stderr.strip()}\n$ {' '.join(cmd)}")
    return out
