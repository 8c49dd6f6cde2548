"""Chapter 9 on the CPU: the examples' inputs, the PyTorch baselines and references they are checked against,
the tolerances they declare, and the kernel files' bookkeeping. The kernels themselves need a GPU (gpu_check.sh)."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from harness.device import REPO_ROOT
from harness.example import is_example_file, load_example
from harness.verify import compare

CH9 = REPO_ROOT / "ch9"
EXAMPLES = sorted(p for p in CH9.glob("*.py") if is_example_file(p))
CPU = torch.device("cpu")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_need_cuda_and_carry_torch_references(path):
    ex = load_example(path)
    assert ex.requires.cuda, "the headline of every ch9 example is a CUDA kernel"
    for v in ex.variants():
        assert v.name.startswith("torch") == (v.role == "reference"), f"{v.name} has role {v.role}"
    for dist in ex.distributions or (None,):
        inputs = ex.make_inputs("tiny", CPU, 0, dist)
        assert ex.bytes_moved(inputs) > 0
        if ex.flops:
            assert ex.flops(inputs) > 0


def test_gemm_shapes_and_ragged_edges():
    from ch9 import sgemm_tiling, wmma_gemm

    for mod, dtype in ((sgemm_tiling, torch.float32), (wmma_gemm, torch.bfloat16)):
        x = mod.setup("tiny", CPU, 0, dist="aligned")
        assert x["a"].shape == (64, 64) and x["b"].shape == (64, 64) and x["a"].dtype == dtype
        r = mod.setup("tiny", CPU, 0, dist="ragged")
        m, k = r["a"].shape
        assert r["b"].shape[0] == k and (m % 4, k % 4, r["b"].shape[1] % 4) != (0, 0, 0)
        assert mod.EXAMPLE.flops(r) == 2 * m * k * r["b"].shape[1]


@pytest.mark.parametrize("dist", ["aligned", "ragged"])
def test_sgemm_reference_is_fp32_and_restores_tf32(dist):
    from ch9.sgemm_tiling import setup, torch_mm_fp32

    x = setup("tiny", CPU, 1, dist=dist)
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        out = torch_mm_fp32(x)
        assert torch.backends.cuda.matmul.allow_tf32 is True, "the reference must restore the global setting"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    exact = (x["a"].double() @ x["b"].double()).float()
    assert compare([out], [exact]).ok
    assert 0.5 < out.std().item() < 2.0, "inputs are scaled so that C ~ N(0, 1) at any K"


@pytest.mark.parametrize("dist", ["normal", "ragged", "large"])
def test_l2norm_eager_agrees_with_normalize_and_fp32(dist):
    from ch9.fused_l2norm import EXAMPLE, eager, setup

    x = setup("tiny", CPU, 2, dist=dist)
    ref = eager(x)
    assert compare([F.normalize(x["x"], dim=-1)], [ref], EXAMPLE.tolerance).ok
    # what the fused kernel computes: fp32 sum of squares, one rounding at the end
    xf = x["x"].float()
    fused = (xf / xf.norm(dim=-1, keepdim=True).clamp_min(1e-12)).to(torch.bfloat16)
    assert compare([fused], [ref], EXAMPLE.tolerance).ok


def test_bias_gelu_residual_tolerance_covers_eager_rounding():
    """The fused kernel rounds once, eager three times: the declared tolerance must hold at 16M elements."""
    from ch9.fused_bias_gelu_residual import EXAMPLE, eager, setup

    x = setup("small", CPU, 3)
    ref = eager(x)
    fused = (F.gelu(x["x"].float() + x["bias"].float()) + x["residual"].float()).to(torch.bfloat16)
    assert compare([fused], [ref], EXAMPLE.tolerance).ok
    ragged = setup("tiny", CPU, 3, dist="ragged")
    assert ragged["x"].shape[1] % 8 and ragged["bias"].shape == (ragged["x"].shape[1],)


def test_inline_ptx_reference_and_tail():
    from ch9.inline_ptx_loads import EXAMPLE, setup

    x = setup("tiny", CPU, 4)
    assert x["x"].numel() % 4, "tiny leaves a tail that is not a whole float4"
    out = EXAMPLE.references["torch_add"].fn(x)
    assert torch.allclose(out, x["alpha"] * x["x"] + x["y"], rtol=1e-6, atol=1e-6)


def _declared_launchers(header: str) -> set[str]:
    body = header[header.index('extern "C" {'):]
    return set(re.findall(r"^\s*(?:cudaError_t|int)\s+(\w+)\(", body, re.M))


def test_every_declared_launcher_is_defined_and_bound():
    folder = CH9 / "kernels"
    declared = _declared_launchers((folder / "launchers.h").read_text())
    defined = {m for cu in folder.glob("*.cu")
               for m in re.findall(r'^extern "C" (?:cudaError_t|int) (\w+)\(', cu.read_text(), re.M)}
    assert declared and declared == defined
    binding = (folder / "binding.cpp").read_text()
    assert not [n for n in declared if not re.search(rf"\b{n}\b", binding)]
    bound = set(re.findall(r'm\.def\("(\w+)"', binding))
    used = {m for p in EXAMPLES for m in re.findall(r"ext\(\)\.(\w+)", p.read_text())}
    assert used <= bound, f"examples call unbound functions: {used - bound}"



def test_gpu_scripts_are_executable_and_name_real_files():
    for script in ("gpu_check.sh", "show_sass.sh"):
        path = CH9 / script
        assert path.exists() and path.stat().st_mode & 0o111, f"{script} must be executable"
    text = (CH9 / "gpu_check.sh").read_text()
    for name in re.findall(r"ch9/(\w+\.py)", text):
        assert (CH9 / name).exists(), name


@pytest.mark.gpu
@pytest.mark.parametrize("mnk", [(1, 1, 1), (7, 5, 3), (128, 128, 8), (129, 131, 9), (200, 64, 300), (256, 260, 132)])
def test_gemm_kernels_at_edge_shapes(mnk):
    """Tile edges, K not a multiple of the K-step, N not a multiple of 4: every GEMM kernel against cuBLAS."""
    from ch9.kernels import ext

    m, n, k = mnk
    g = torch.Generator(device="cuda").manual_seed(m * n + k)
    a, b = torch.randn(m, k, device="cuda", generator=g), torch.randn(k, n, device="cuda", generator=g)
    want = (a.double() @ b.double()).float()
    for name in ("sgemm_naive", "sgemm_smem", "sgemm_regtile", "sgemm_regtile_vec4"):
        torch.testing.assert_close(getattr(ext(), name)(a, b), want, rtol=1e-4, atol=1e-4, msg=name)
    a16, b16 = a.bfloat16(), b.bfloat16()
    want16 = (a16.double() @ b16.double()).float()
    for name in ("gemm_bf16_simt", "gemm_bf16_wmma"):
        torch.testing.assert_close(getattr(ext(), name)(a16, b16).float(), want16, rtol=1.6e-2, atol=1e-2, msg=name)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (5, 8), (33, 1000), (8, 4096)])
def test_fused_kernels_at_edge_shapes(shape):
    from ch9.kernels import ext

    rows, cols = shape
    g = torch.Generator(device="cuda").manual_seed(rows + cols)
    x = torch.randn(rows, cols, device="cuda", generator=g).bfloat16()
    xf = x.float()
    torch.testing.assert_close(ext().l2norm_fused(x).float(), F.normalize(xf, dim=-1), rtol=1.6e-2, atol=1e-2)
    bias, res = torch.randn(cols, device="cuda", generator=g).bfloat16(), torch.randn_like(x)
    want = F.gelu(xf + bias.float()) + res.float()
    torch.testing.assert_close(ext().bias_gelu_residual(x, bias, res).float(), want, rtol=1.6e-2, atol=1e-2)
    v, w = xf.flatten(), torch.randn(rows * cols, device="cuda", generator=g)
    for name in ("axpy_plain", "axpy_ptx_stream"):
        torch.testing.assert_close(getattr(ext(), name)(v, w, 1.5), 1.5 * v + w, msg=name)
