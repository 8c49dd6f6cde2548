"""ch9/cutlass_gemm.py on the CPU: how a .cu asks for the CUTLASS headers (`// aisp: include cutlass`), the
one-line error when they are missing, which targets CI compiles such a file for, and the example's inputs and
padding. The kernels need a GPU and the nvidia-cutlass wheel (ch9/gpu_check_cutlass.sh)."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from harness import cuda_build
from harness.device import REPO_ROOT

CPU = torch.device("cpu")
KERNELS = REPO_ROOT / "ch9" / "cutlass_kernels"


def fake_cutlass_package(root, name="fake_cutlass_library", headers=True):
    """A package laid out as the nvidia-cutlass wheel lays out cutlass_library."""
    pkg = root / name
    (pkg / "source" / "include" / "cutlass").mkdir(parents=True)
    (pkg / "source" / "tools" / "util" / "include" / "cutlass" / "util").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    if headers:
        (pkg / "source" / "include" / "cutlass" / "cutlass.h").write_text("#pragma once\n")
    return pkg


def test_include_marker_adds_the_package_headers(tmp_path, monkeypatch):
    pkg = fake_cutlass_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    dirs, _ = cuda_build.cutlass_include_dirs("fake_cutlass_library")
    assert dirs == [pkg / "source" / "include", pkg / "source" / "tools" / "util" / "include"]

    monkeypatch.setitem(cuda_build.LIBRARIES, "cutlass", lambda: (dirs, "4.2.0.0"))
    src = tmp_path / "k.cu"
    src.write_text("// aisp: arch sm_90a\n// aisp: include cutlass\n__global__ void k() {}\n")
    cmd = cuda_build.nvcc_command(src, tmp_path / "k.o")
    assert f"-I{dirs[0]}" in cmd and f"-I{dirs[1]}" in cmd
    flags, versions = cuda_build.library_includes([src.read_text(), "int x;\n"])
    assert flags == [f"-I{d}" for d in dirs] and versions == ["cutlass 4.2.0.0"]
    assert cuda_build.library_includes(["// include cutlass is not a marker\n"]) == ([], [])
    with pytest.raises(cuda_build.CudaBuildError, match="unknown library 'thrustx'"):
        cuda_build.include_markers("// aisp: include thrustx\n")


def test_missing_headers_are_one_clear_line(tmp_path, monkeypatch):
    with pytest.raises(cuda_build.CudaBuildError) as info:
        cuda_build.cutlass_include_dirs("no_such_cutlass_package")
    assert "\n" not in str(info.value) and "pip install nvidia-cutlass" in str(info.value)
    fake_cutlass_package(tmp_path, "empty_cutlass_library", headers=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(cuda_build.CudaBuildError, match="reinstall nvidia-cutlass"):
        cuda_build.cutlass_include_dirs("empty_cutlass_library")


def test_ci_archs_marker_replaces_the_ci_targets():
    assert cuda_build.ci_archs("__global__ void k() {}\n") == ["sm_80", "sm_90", "sm_100"]
    assert cuda_build.ci_archs("// aisp: arch sm_90a\n") == ["sm_80", "sm_90", "sm_100", "sm_90a"]
    assert cuda_build.ci_archs("// aisp: arch sm_90a\n// aisp: ci-archs sm_90a\n") == ["sm_90a"]
    with pytest.raises(cuda_build.CudaBuildError):
        cuda_build.ci_archs("// aisp: ci-archs hopper\n")
    # The CUTLASS files: each compiled in CI only for the target its kernel is for, and said so in the file.
    sm90 = (KERNELS / "gemm_sm90.cu").read_text()
    assert cuda_build.include_markers(sm90) == ["cutlass"] and cuda_build.ci_archs(sm90) == ["sm_90a"]
    sm80 = (KERNELS / "gemm_sm80.cu").read_text()
    assert cuda_build.include_markers(sm80) == ["cutlass"] and cuda_build.ci_archs(sm80) == ["sm_80"]


def test_launchers_declared_defined_and_bound():
    import re

    header = (KERNELS / "launchers.h").read_text()
    declared = set(re.findall(r"^cudaError_t (\w+)\(", header, re.M))
    defined = {m for cu in KERNELS.glob("*.cu") for m in re.findall(r'^extern "C" cudaError_t (\w+)\(', cu.read_text(), re.M)}
    assert declared == defined == {"launch_cutlass_gemm_sm90", "launch_cutlass_gemm_sm80"}
    binding = (KERNELS / "binding.cpp").read_text()
    bound = set(re.findall(r'm\.def\("(\w+)"', binding))
    assert all(re.search(rf"\b{n}\b", binding) for n in declared) and bound == {"gemm_sm90", "gemm_sm80"}


def test_example_inputs_padding_and_variants():
    sys.modules.pop("ch9.cutlass_gemm", None)
    from ch9 import cutlass_gemm as ex

    x = ex.setup("tiny", CPU, 0)
    assert x["a"].shape == (256, 128) and x["b"].shape == (512, 128) and x["a"].dtype == torch.bfloat16
    r = ex.setup("tiny", CPU, 0, dist="ragged")
    (m, k), n = r["a"].shape, r["b"].shape[0]
    assert k % 8 and n % 8 and ex.EXAMPLE.flops(r) == 2 * m * n * k
    a, b = ex.padded(r["a"], r["b"])
    assert a.shape == (m, k + -k % 8) and b.shape == (n + -n % 8, k + -k % 8)
    assert torch.equal(a[:, :k], r["a"]) and not a[:, k:].any() and not b[n:].any()
    torch.testing.assert_close((a.float() @ b.float().T)[:, :n], r["a"].float() @ r["b"].float().T)
    roles = {v.name: v.role for v in ex.EXAMPLE.variants()}
    assert roles == {"cutlass2_sm80": "baseline", "cutlass3_sm90_tma_ws": "optimized", "torch_matmul_bf16": "reference"}
    hopper = next(v for v in ex.EXAMPLE.variants() if v.name == "cutlass3_sm90_tma_ws").requires
    assert hopper.max_capability == (9, 0) and "cutlass_library" in hopper.packages
    assert hopper.unmet(CPU)  # skipped, with a reason, without a GPU


def test_requirements_carry_the_cutlass_wheel():
    lines = [ln.strip() for ln in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    assert any(ln.startswith("nvidia-cutlass") for ln in lines)


@pytest.mark.gpu
@pytest.mark.parametrize("mnk", [(1, 8, 8), (7, 16, 24), (129, 136, 72), (300, 264, 1000), (1000, 8, 64)])
def test_cutlass_kernels_at_edge_shapes(mnk):
    """Tile edges in M, N and K (multiples of 8 where the kernels need them) against a float64 product."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("cutlass_library", reason="needs the nvidia-cutlass wheel (its headers)")
    from ch9.cutlass_kernels import gemm

    m, n, k = mnk
    g = torch.Generator(device="cuda").manual_seed(m * n + k)
    a = torch.randn(m, k, device="cuda", generator=g).bfloat16()
    b = torch.randn(n, k, device="cuda", generator=g).bfloat16()
    want = (a.double() @ b.double().T).float()
    names = ["gemm_sm80"] + (["gemm_sm90"] if torch.cuda.get_device_capability() == (9, 0) else [])
    for name in names:
        got = gemm(name, a, b).float()
        torch.testing.assert_close(got, want, rtol=1.6e-2, atol=3e-2 * k ** 0.5, msg=name)
        with pytest.raises(ValueError, match="multiples of 8"):   # refused in Python: see ch9/cutlass_kernels
            gemm(name, a[:, : k - 1].contiguous(), b[:, : k - 1].contiguous())


def test_bad_arguments_are_refused_before_the_extension(monkeypatch):
    """Every precondition is checked in Python: the extension's own C++ checks crashed the process on the H200."""
    import ch9.cutlass_kernels as ck

    monkeypatch.setattr(ck, "ext", lambda: pytest.fail("the extension was reached"))
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    a, b = torch.zeros(16, 16, dtype=torch.bfloat16), torch.zeros(8, 16, dtype=torch.bfloat16)
    for args, why in [(("gemm_sm70", a, b), "no CUTLASS kernel"), (("gemm_sm80", a.float(), b), "2-D bfloat16"),
                      (("gemm_sm80", a[:, :8], b[:, :8]), "contiguous"), (("gemm_sm80", a, b[:, :8].contiguous()), "K differs"),
                      (("gemm_sm80", a, b[:7].contiguous()), "multiples of 8")]:
        with pytest.raises(ValueError, match=why):
            ck.gemm(*args)


def test_a_set_up_venv_has_the_headers():
    """setup.sh installs nvidia-cutlass; where it ran with today's requirements (CI), the CUTLASS files'
    compile test must not skip for want of headers."""
    stamp = Path(sys.prefix) / ".aisp-setup"  # setup.sh's: sha256 of requirements.txt + setup.sh, 16 hex digits
    current = hashlib.sha256((REPO_ROOT / "requirements.txt").read_bytes() + (REPO_ROOT / "setup.sh").read_bytes())
    if not stamp.exists() or not stamp.read_text().startswith(current.hexdigest()[:16]):
        pytest.skip(f"{sys.prefix} was not set up by setup.sh with these requirements")
    assert importlib.util.find_spec("cutlass_library"), "setup.sh ran but nvidia-cutlass is missing"


def test_gpu_script_is_executable_and_names_real_files():
    import re

    path = REPO_ROOT / "ch9" / "gpu_check_cutlass.sh"
    assert path.stat().st_mode & 0o111, "gpu_check_cutlass.sh must be executable"
    text = path.read_text()
    for name in re.findall(r"\b((?:ch9|tests)/[\w/]+\.py)\b", text):
        assert (REPO_ROOT / name).exists(), name
    assert "ch9/cutlass_gemm" in text and "--max-time 0.5" in text
