"""CUDA sources: every .cu compiles with plain nvcc for the CI architectures, the build cache is keyed
right, and the chapter 6-8 examples set up and run their PyTorch references on the CPU."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from harness import cuda_build
from harness.device import REPO_ROOT
from harness.example import load_example

CU_FILES = sorted(REPO_ROOT.glob("ch*/**/*.cu"))
NVCC = cuda_build.find_nvcc()


@pytest.mark.parametrize("path", CU_FILES, ids=[str(p.relative_to(REPO_ROOT)) for p in CU_FILES])
def test_cu_compiles_for_ci_archs(path, tmp_path):
    if NVCC is None:
        pytest.skip("nvcc not found (set CUDA_HOME or put nvcc on PATH)")
    try:  # a `// aisp: include cutlass` file needs the nvidia-cutlass wheel, which setup.sh installs (CI has it:
        cuda_build.library_includes([path.read_text()])  # tests/test_ch9_cutlass.py checks a set-up venv has it)
    except cuda_build.CudaBuildError as exc:
        pytest.skip(str(exc))
    assert cuda_build.compile_cu(path, tmp_path, nvcc=NVCC).exists()


def test_nvcc_command_adds_marked_arch_and_standalone(tmp_path):
    src = tmp_path / "k.cu"
    src.write_text("// aisp: arch sm_90a\n#ifdef AISP_STANDALONE\nint main() { return 0; }\n#endif\n")
    cmd = cuda_build.nvcc_command(src, tmp_path / "k.o")
    for arch in ("sm_80", "sm_90", "sm_100", "sm_90a"):
        assert cuda_build.gencode(arch) in cmd
    assert "-DAISP_STANDALONE" in cmd
    plain = tmp_path / "p.cu"
    plain.write_text("__global__ void k() {}\n")
    cmd = cuda_build.nvcc_command(plain, tmp_path / "p.o")
    assert "-DAISP_STANDALONE" not in cmd and cuda_build.gencode("sm_90a") not in cmd


def test_arch_markers_and_device_arch():
    assert cuda_build.arch_markers("// aisp: arch sm_90a\nint x;\n  //aisp: arch sm_100a, sm_90a\n") == [
        "sm_90a", "sm_100a", "sm_90a"]
    assert cuda_build.arch_markers("// arch sm_90a is not a marker\n") == []
    with pytest.raises(cuda_build.CudaBuildError):
        cuda_build.arch_markers("// aisp: arch hopper\n")
    assert cuda_build.gencode("sm_90a") == "-gencode=arch=compute_90a,code=sm_90a"
    assert cuda_build.device_arch((9, 0), ["sm_90a"]) == "sm_90a"
    assert cuda_build.device_arch((10, 0), ["sm_90a"]) == "sm_100"
    assert cuda_build.device_arch((8, 0), []) == "sm_80"


def test_build_key_and_dir():
    files = {"ch7/kernels/a.cu": b"kernel A", "ch7/kernels/binding.cpp": b"binding"}
    base = dict(compiler="cuda_13.0", torch_version="2.11.0+cu130", python="3.12.3", arch="sm_90", flags=["-O3"])
    key = cuda_build.build_key(files, **base)
    assert key == cuda_build.build_key(dict(reversed(files.items())), **base)  # order of files is irrelevant
    changed = [
        cuda_build.build_key({**files, "ch7/kernels/a.cu": b"kernel A'"}, **base),
        cuda_build.build_key({**files, "ch7/kernels/common.cuh": b"header"}, **base),
        *(cuda_build.build_key(files, **{**base, field: value}) for field, value in
          [("compiler", "cuda_12.8"), ("torch_version", "2.12.0"), ("python", "3.11.9"), ("arch", "sm_90a"),
           ("flags", ["-O3", "-lineinfo"])]),
    ]
    assert len({key, *changed}) == len(changed) + 1, "every input must change the key"
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    folder = cuda_build.build_dir("aisp_ch7_kernels", key)
    assert folder == REPO_ROOT / "build" / "extensions" / f"aisp_ch7_kernels-{key}"


def test_key_files_include_local_and_shared_headers(tmp_path):
    (tmp_path / "a.cu").write_text("#include \"common.cuh\"\n")
    (tmp_path / "common.cuh").write_text("// helpers\n")
    (tmp_path / "binding.cpp").write_text("// binding\n")
    names = cuda_build._key_files([tmp_path / "a.cu", tmp_path / "binding.cpp"])
    shared = {p.name for p in cuda_build.INCLUDE_DIR.rglob("*") if p.suffix in (".cuh", ".h")}
    assert {Path(n).name for n in names} == {"a.cu", "common.cuh", "binding.cpp"} | shared
    assert {"launch.cuh", "binding.h", "grid.cuh"} <= shared


def test_extension_folders_are_complete():
    folders = cuda_build.extension_dirs()
    assert {f.relative_to(REPO_ROOT).as_posix() for f in folders} >= {"ch6/kernels", "ch7/kernels", "ch8/kernels"}
    for folder in folders:
        assert cuda_build.extension_name(folder) == "aisp_" + "_".join(folder.relative_to(REPO_ROOT).parts)
        sources = cuda_build.extension_sources(folder)
        assert sources[-1].name == "binding.cpp" and any(s.suffix == ".cu" for s in sources)


def _declared_launchers(header: str) -> set[str]:
    body = header[header.index('extern "C" {'):]
    return set(re.findall(r"^\s*(?:cudaError_t|int)\s+(\w+)\(", body, re.M))


@pytest.mark.parametrize("chapter", ["ch6", "ch7", "ch8"])
def test_every_declared_launcher_is_defined_and_bound(chapter):
    """extern "C" links by name only: a launcher declared but never defined fails at import on the GPU."""
    folder = REPO_ROOT / chapter / "kernels"
    declared = _declared_launchers((folder / "launchers.h").read_text())
    assert declared
    defined = {m for cu in folder.glob("*.cu")
               for m in re.findall(r'^extern "C" (?:cudaError_t|int) (\w+)\(', cu.read_text(), re.M)}
    assert declared == defined
    binding = (folder / "binding.cpp").read_text()
    unused = [name for name in declared if not re.search(rf"\b{name}\b", binding)]
    assert not unused, f"declared but not bound: {unused}"


def test_load_without_cuda_is_one_clear_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(cuda_build.CudaBuildError) as info:
        cuda_build.load_dir(REPO_ROOT / "ch6" / "kernels")
    assert "\n" not in str(info.value) and ("CPU-only" in str(info.value) or "GPU" in str(info.value))


EXAMPLES = sorted(p for ch in ("ch6", "ch7", "ch8") for p in (REPO_ROOT / ch).glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_setup_and_torch_references_on_cpu(path):
    """The kernels need a GPU; the inputs and the PyTorch references they are checked against do not."""
    ex = load_example(path)
    assert ex.requires.cuda, "these examples time CUDA kernels: they must say they need CUDA"
    inputs = ex.setup("tiny", torch.device("cpu"), 0)
    refs = [v.fn for v in ex.variants() if v.role == "reference"]
    assert refs, "every example carries a PyTorch reference shown beside its kernels"
    for fn in refs:
        out = fn(inputs)
        assert isinstance(out, torch.Tensor) and out.numel() > 0 and torch.isfinite(out.float()).all()
    assert ex.bytes_moved(inputs) > 0


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_library_code_is_a_reference_and_kernels_are_ours(path):
    """torch one-liners are references, never the baseline or an optimized variant; kernels are not references."""
    for v in load_example(path).variants():
        assert v.name.startswith("torch") == (v.role == "reference"), f"{v.name} has role {v.role}"


def test_tuning_sweep_lists_configurations_and_needs_a_gpu():
    """scripts/tune_memory_kernels.py: every family names a real example; without a GPU, one line and exit 2."""
    import importlib
    import importlib.util
    import subprocess
    import sys

    spec = importlib.util.spec_from_file_location("tune_memory_kernels", REPO_ROOT / "scripts" / "tune_memory_kernels.py")
    tune = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tune  # its dataclass looks itself up there
    spec.loader.exec_module(tune)
    fams = tune.families()
    assert {f.id for f in fams} >= {"ch6/silu_float4", "ch6/affine_2d_float4", "ch7/scale_coalesced_ilp",
                                    "ch7/transpose", "ch7/stencil"}
    for fam in fams:
        example = importlib.import_module(fam.module).EXAMPLE
        assert example.bytes_moved(example.setup("tiny", torch.device("cpu"), 0)) > 0
        assert any(label.endswith("*") for label, _ in fam.configs), f"{fam.id}: no default marked"
    if not torch.cuda.is_available():
        p = subprocess.run([sys.executable, "scripts/tune_memory_kernels.py"], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 2 and "needs a CUDA GPU" in p.stderr and p.stderr.count("\n") == 1


@pytest.mark.gpu
def test_pooled_gather_mode_matches_torch():
    """The register-hungry mode of ch8's gather never runs in the timed example; check it here."""
    from ch8.kernels import ext

    g = torch.Generator(device="cuda").manual_seed(0)
    table = torch.randn(5000, device="cuda", generator=g)
    idx = torch.randint(0, 5000, (777,), device="cuda", generator=g, dtype=torch.int32)
    window = (idx.long()[:, None] + torch.arange(128, device="cuda")).clamp(max=4999)
    v = table[window]
    expected = 1.5 * (torch.softmax(v, dim=1) * v).sum(dim=1)
    for cap in (0, 4, 8):
        got = ext().gather(table, idx, 1.5, 1, cap)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)



def test_load_passes_arch_flags_and_cache_folder_to_torch(tmp_path, monkeypatch):
    """What load() hands torch's builder, checked with the builder replaced: no GPU or nvcc needed."""
    from torch.utils import cpp_extension

    src = tmp_path / "src"
    src.mkdir()
    (src / "k.cu").write_text("// aisp: arch sm_90a\n__global__ void k() {}\n")
    (src / "binding.cpp").write_text("// binding\n")
    calls = []
    monkeypatch.setattr(cuda_build, "BUILD_ROOT", tmp_path / "build")
    monkeypatch.setattr(cuda_build, "_check_toolchain", lambda: "/opt/cuda/bin/nvcc")
    monkeypatch.setattr(cuda_build, "nvcc_version", lambda nvcc: "cuda_13.0")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: calls.append(kw) or "module")
    assert cuda_build.load("aisp_t", [src / "k.cu", src / "binding.cpp"]) == "module"
    kw = calls[0]
    assert cuda_build.gencode("sm_90a") in kw["extra_cuda_cflags"] and "-O3" in kw["extra_cuda_cflags"]
    folder = Path(kw["build_directory"])
    assert folder.parent == tmp_path / "build" and folder.name.startswith("aisp_t-") and folder.is_dir()
    assert kw["name"] == "aisp_t" and len(kw["sources"]) == 2
    # The same sources give the same folder; a changed source gives another.
    cuda_build.load("aisp_t", [src / "k.cu", src / "binding.cpp"])
    (src / "k.cu").write_text("// aisp: arch sm_90a\n__global__ void k2() {}\n")
    cuda_build.load("aisp_t", [src / "k.cu", src / "binding.cpp"])
    assert calls[1]["build_directory"] == kw["build_directory"] != calls[2]["build_directory"]

    def broken(**kw):
        raise RuntimeError("Error building extension 'aisp_t':\n[1/2] nvcc ...\nk.cu(2): error: bad thing\nninja failed")

    monkeypatch.setattr(cpp_extension, "load", broken)
    with pytest.raises(cuda_build.CudaBuildError) as info:
        cuda_build.load("aisp_t", [src / "k.cu", src / "binding.cpp"])
    message = str(info.value)
    assert "\n" not in message and "k.cu(2): error: bad thing" in message and "build_error.log" in message
