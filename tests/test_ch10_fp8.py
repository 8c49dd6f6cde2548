"""Chapter 10's FP8 GEMM: what runs without a GPU (the inputs, the scale math emulated on the CPU, the exactness
the tolerance rests on, the generated wgmma header, the sources' layout), and, on a Hopper GPU, every kernel
against the exact result at edge shapes."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from harness.device import REPO_ROOT
from harness.example import load_example

CH10 = REPO_ROOT / "ch10"
KERNELS = ("gemm_fp8_pipelined", "gemm_fp8_ws_persistent", "gemm_fp8_ws_persistent_mma_overlap")


def _example():
    return load_example(CH10 / "hopper_gemm_fp8.py")


def _emulated_kernel(x):
    """What the kernels compute, on the CPU: exact products, fp32 sums, both scales, one rounding to bf16."""
    return ((x["a"].float() @ x["b"].float().T) * (x["scale_a"] * x["scale_b"])).to(torch.bfloat16)


def _scaled_mm_cpu(x):
    try:
        return _example().references["torch_scaled_mm"].fn(x)
    except (RuntimeError, NotImplementedError) as exc:  # some CPU builds of torch lack FP8 _scaled_mm
        pytest.skip(f"torch._scaled_mm on the CPU: {str(exc).splitlines()[0]}")


@pytest.mark.parametrize("dist", ["aligned", "ragged"])
def test_inputs_suit_tma_and_fp8_wgmma(dist):
    ex = _example()
    x = ex.make_inputs("tiny", torch.device("cpu"), 3, dist)
    a, b = x["a"], x["b"]
    assert a.dtype == b.dtype == torch.float8_e4m3fn and a.is_contiguous() and b.is_contiguous()
    assert a.shape[1] == b.shape[1] and a.shape[1] % 16 == 0  # K-major operands, 16-byte TMA row strides
    if dist == "ragged":
        assert a.shape[0] % 128 and b.shape[0] % 256 and a.shape[1] % 128  # every tile edge and the K-block cut
    assert b.shape[0] % 16 == 0  # torch._scaled_mm (the reference) requires N and K multiples of 16
    for s in (x["scale_a"], x["scale_b"]):
        assert s.dtype == torch.float32 and s.numel() == 1
    # product 1/sqrt(K) (C ~ N(0, 1)), split unevenly so that a dropped scale shows
    assert float(x["scale_a"] * x["scale_b"]) == pytest.approx(a.shape[1] ** -0.5, rel=1e-6)
    assert 0.5 <= float(x["scale_a"]) * a.shape[1] ** 0.25 < 2
    for v in ex.variants():
        if v.role != "reference":
            assert v.requires.min_capability == (9, 0) and v.requires.max_capability == (9, 0)
        assert v.name.startswith("torch") == (v.role == "reference")
    assert ex.flops_dtype == "fp8" and ex.flops(x) == 2 * a.shape[0] * b.shape[0] * a.shape[1]


def test_products_of_e4m3_values_are_exact_in_fp32():
    """The tolerance's premise: every product of two e4m3 values (4 significant bits each) is exact in fp32."""
    values = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    values = values[torch.isfinite(values)]
    products32 = values[:, None] * values[None, :]
    assert torch.equal(products32.double(), values.double()[:, None] * values.double()[None, :])


def test_tolerance_admits_a_14_bit_fp8_accumulator_at_k8192():
    """The atol's premise: an accumulator truncated to 14 bits after every k32 wgmma (Hopper's FP8 tensor cores)
    leaves errors whose largest over the 8192^2 entries of the full-size C (~6 sigma) stays inside atol."""
    m, n, k = 32, 32, 8192
    g = torch.Generator().manual_seed(7)
    a = torch.randn(m, k, generator=g).to(torch.float8_e4m3fn).double()
    b = torch.randn(n, k, generator=g).to(torch.float8_e4m3fn).double()
    acc = torch.zeros(m, n, dtype=torch.float64)
    for k0 in range(0, k, 32):
        mant, exp = torch.frexp(acc + a[:, k0:k0 + 32] @ b[:, k0:k0 + 32].T)
        acc = torch.ldexp(torch.trunc(mant * 2.0**15) / 2.0**15, exp)  # 15 fraction bits of [0.5, 1): 14 kept
    err = (acc - a @ b.T) / k**0.5  # in C's unit spread
    atol = _example().tolerance[1]
    assert 6 * float(err.std()) < atol and float(err.abs().max()) < atol


def test_scale_math_emulated_matches_scaled_mm_and_catches_a_dropped_scale():
    ex = _example()
    rtol, atol = ex.tolerance
    from ch10.hopper_gemm_fp8 import fp8_inputs

    x = fp8_inputs(67, 96, 208, "cpu", torch.Generator().manual_seed(5))  # small: CPU _scaled_mm is slow
    want = _emulated_kernel(x).float()
    assert 0.5 < float(want.std()) < 2  # C ~ N(0, 1): the atol means 4% of its spread
    torch.testing.assert_close(_scaled_mm_cpu(x).float(), want, rtol=rtol, atol=atol)
    dropped = ((x["a"].float() @ x["b"].float().T) * x["scale_a"] * x["a"].shape[1] ** -0.25).to(torch.bfloat16)
    split = float(x["scale_a"]) * x["a"].shape[1] ** 0.25
    if abs(split - 1) > 0.05:  # the seed's split is far enough from 1 to tell
        assert not torch.allclose(dropped.float(), want, rtol=rtol, atol=atol)


def test_wgmma_fp8_header_is_generated_and_current():
    """wgmma_fp8.cuh is written by gen_wgmma_fp8.py; an edit to one without the other is caught here."""
    sys.path.insert(0, str(CH10 / "kernels"))
    try:
        import gen_wgmma_fp8
    finally:
        sys.path.pop(0)
    text = gen_wgmma_fp8.header()
    assert (CH10 / "kernels" / "wgmma_fp8.cuh").read_text() == text
    body = text[text.index("m64n256k32"):]
    assert body.count('"+f"(d[') == 128
    assert "m64n256k32.f32.e4m3.e4m3" in body and "%128, %129, p, 1, 1;" in body  # no transpose immediates


def test_sources_are_marked_guarded_declared_and_bound():
    folder = CH10 / "kernels"
    src = (folder / "hopper_gemm_fp8.cu").read_text()
    assert "// aisp: arch sm_90a" in src and "__CUDA_ARCH_FEAT_SM90_ALL" in src
    assert "CU_TENSOR_MAP_DATA_TYPE_UINT8" in src and "k % 16 != 0" in src
    # 4 stages of (128 + 256) x 128 one-byte elements plus barriers and alignment slack <= 227 KiB
    assert 4 * (128 + 256) * 128 + 8 * 8 + 1024 <= 227 * 1024
    defined = set(re.findall(r'^extern "C" cudaError_t (\w+)\(', src, re.M))
    assert defined == {"launch_" + k for k in KERNELS}
    header, binding = (folder / "launchers.h").read_text(), (folder / "binding.cpp").read_text()
    for name in KERNELS:
        assert re.search(rf"cudaError_t launch_{name}\(", header) and f'm.def("{name}"' in binding


def test_gemm_sweep_fp8_refuses_bad_sizes_and_missing_hopper():
    from ch10 import gemm_sweep_fp8 as sweep

    assert sweep.main(["--sizes", "100"]) == 2  # not a multiple of 16
    if not torch.cuda.is_available():
        assert sweep.main(["--size", "tiny"]) == 2
    assert all(k % 16 == 0 for _, _, k in sweep.CHECK_SHAPES)
    assert any(k % 128 for _, _, k in sweep.CHECK_SHAPES) and any(m % 128 for m, _, _ in sweep.CHECK_SHAPES)


def test_gemm_sweep_fp8_plot_from_results(tmp_path):
    pytest.importorskip("matplotlib")
    from ch10 import gemm_sweep_fp8 as sweep

    row = {"n": 4096, "ok": True, "ms": 0.2, "tflops": 690.0, "scaled_mm_ms": 0.15, "scaled_mm_tflops": 900.0,
           "fast_accum_ms": 0.12, "fast_accum_tflops": 1100.0, "vs_scaled_mm": 0.75, "vs_fastest_reference": 0.6}
    results = [{"kernel": k, "correct": True, "rows": [row, {**row, "n": 8192}]} for k in sweep.KERNELS[:2]]
    results.append({"kernel": sweep.KERNELS[2], "correct": False, "error": "hung: no result within 90 s"})
    sweep.plot(results, str(tmp_path / "sweep.png"))
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_gpu_check_fp8_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(CH10 / "gpu_check_fp8.sh")]).returncode == 0


# ---- on a GPU ----------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("mnk", [(128, 256, 128), (64, 100, 16), (200, 300, 144), (1000, 777, 528)])
def test_fp8_gemm_matches_exact(kernel, mnk):
    if not (torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)):
        pytest.skip("needs a Hopper GPU (sm_90a: FP8 wgmma, TMA)")
    from ch10.hopper_gemm_fp8 import fp8_inputs
    from ch10.kernels import ext

    x = fp8_inputs(*mnk, "cuda", torch.Generator(device="cuda").manual_seed(mnk[0]))
    got = getattr(ext(), kernel)(x["a"], x["b"], x["scale_a"], x["scale_b"])
    assert got.dtype == torch.bfloat16 and got.shape == (mnk[0], mnk[1])
    want = (x["a"].float() @ x["b"].float().T) * (x["scale_a"] * x["scale_b"])
    torch.testing.assert_close(got.float(), want, rtol=1.6e-2, atol=4e-2)
