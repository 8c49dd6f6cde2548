"""Chapter 10's Blackwell GEMM (sm_100a, compiled, never run): on the CPU, the example is skipped with its
reason, the requirement admits compute capability 10.0 only, the launchers are declared and bound, and the
B200 target is readable. tests/test_cuda_compile.py compiles blackwell_gemm.cu (sm_100a included)."""
from __future__ import annotations

import re

import pytest
import torch

from harness.device import REPO_ROOT
from harness.example import load_example
from harness.runner import run_example

CH10 = REPO_ROOT / "ch10"
KERNELS = CH10 / "kernels"
LAUNCHERS = ("launch_gemm_tcgen05_1stage", "launch_gemm_tcgen05_pipelined", "launch_gemm_tcgen05_persistent")


@pytest.fixture(scope="module")
def example():
    return load_example(CH10 / "blackwell_gemm.py")


def test_skipped_on_cpu_with_its_reason(example):
    from ch10.blackwell_gemm import REASON

    result = run_example(example, device=torch.device("cpu"), size="tiny", seed=0, example_id="ch10/blackwell_gemm")
    assert result.status == "skipped" and result.reason.startswith(REASON)
    for v in example.variants():
        if v.role != "reference":
            assert v.requires.min_capability == (10, 0) and v.requires.max_capability == (10, 0)
            assert v.requires.unmet(torch.device("cpu")).startswith(REASON)


@pytest.mark.parametrize("capability, runs", [((9, 0), False), ((10, 0), True), ((10, 3), False), ((12, 0), False)])
def test_only_compute_capability_10_0_runs_it(example, monkeypatch, capability, runs):
    from ch10.blackwell_gemm import REASON

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    why = example.requires.unmet(torch.device("cuda"))
    assert (why is None) == runs
    if not runs:
        assert why.startswith(REASON) and f"sm_{capability[0]}{capability[1]}" in why


def test_inputs_and_reference_match_the_hopper_example(example):
    hopper = load_example(CH10 / "hopper_gemm.py")
    assert example.tolerance == hopper.tolerance and example.distributions == hopper.distributions
    for dist in example.distributions:
        x = example.make_inputs("tiny", torch.device("cpu"), 3, dist)
        assert x["a"].shape[1] % 8 == 0  # TMA: 16-byte row strides
        ref = dict((v.name, v.fn) for v in example.variants())["torch_matmul_bf16"](x)
        torch.testing.assert_close(ref.float(), x["a"].float() @ x["b"].float().T, rtol=1.6e-2, atol=1e-2)


def test_source_is_marked_guarded_declared_and_bound():
    src = (KERNELS / "blackwell_gemm.cu").read_text()
    assert "// aisp: arch sm_100a" in src and "__CUDA_ARCH_FEAT_SM100_ALL" in src
    header, binding = (KERNELS / "launchers.h").read_text(), (KERNELS / "binding.cpp").read_text()
    for name in LAUNCHERS:
        assert re.search(rf'extern "C" cudaError_t {name}\(', src), name
        assert f"cudaError_t {name}(" in header and f"gemm_nt(a, b, {name}," in binding
    # 4 stages of (128 + 256) x 64 bf16, 12 barriers, the TMEM address and alignment slack fit in 227 KiB
    assert 4 * (128 + 256) * 64 * 2 + 12 * 8 + 16 + 1024 <= 227 * 1024


def test_b200_target_is_the_books_figure():
    from harness.targets import load_targets

    spec = load_targets(CH10)["blackwell_gemm"]["tflops"]
    assert spec["B200"] == 800.0 and "default" not in spec and "book" in spec["source"]
