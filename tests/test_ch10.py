"""Chapter 10: what runs without a GPU (inputs, PyTorch references, the layout of the sources), and, on a
GPU, every kernel against torch. tests/test_cuda_compile.py compiles ch10's .cu files (sm_90a included)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from harness.device import REPO_ROOT
from harness.example import load_example

CH10 = REPO_ROOT / "ch10"
EXAMPLES = ["hopper_gemm", "cluster_histogram", "grid_sync_smoothing"]


def _example(name):
    return load_example(CH10 / f"{name}.py")


@pytest.mark.parametrize("name", EXAMPLES)
def test_setup_and_references_on_cpu(name):
    ex = _example(name)
    assert ex.requires.cuda
    for dist in ex.distributions or (None,):
        inputs = ex.make_inputs("tiny", torch.device("cpu"), 0, dist)
        refs = [v for v in ex.variants() if v.role == "reference"]
        assert refs
        for v in refs:
            out = v.fn(inputs)
            assert isinstance(out, torch.Tensor) and out.numel() > 0
        assert ex.bytes_moved(inputs) > 0
    for v in ex.variants():  # torch one-liners are references; our kernels are not
        assert v.name.startswith("torch") == (v.role == "reference"), f"{v.name} has role {v.role}"


def test_gemm_shapes_suit_tma_and_reference_is_a_times_b_transposed():
    ex = _example("hopper_gemm")
    for dist in ex.distributions:
        x = ex.make_inputs("tiny", torch.device("cpu"), 1, dist)
        a, b = x["a"], x["b"]
        assert a.shape[1] == b.shape[1] and a.shape[1] % 8 == 0  # K-major operands, 16-byte TMA row strides
        ref = dict((v.name, v.fn) for v in ex.variants())["torch_matmul_bf16"](x)
        torch.testing.assert_close(ref.float(), a.float() @ b.float().T, rtol=1.6e-2, atol=1e-2)
    for v in ex.variants():
        if v.role != "reference":
            assert v.requires.min_capability == (9, 0) and v.requires.max_capability == (9, 0)


def test_histogram_inputs_are_valid_bins():
    from ch10.cluster_histogram import BINS

    ex = _example("cluster_histogram")
    for dist in ex.distributions:
        x = ex.make_inputs("tiny", torch.device("cpu"), 2, dist)["x"]
        assert x.dtype == torch.int32 and 0 <= int(x.min()) and int(x.max()) < BINS and BINS % 4 == 0


def test_smoothing_reference_keeps_ends_and_averages():
    from ch10.grid_sync_smoothing import torch_loop

    x = torch.tensor([3.0, 0.0, 0.0, 6.0])
    one = torch_loop({"x": x, "steps": 1})
    torch.testing.assert_close(one, torch.tensor([3.0, 1.0, 2.0, 6.0]))


def _declared(header: str) -> set[str]:
    return set(re.findall(r"^\s*cudaError_t\s+(\w+)\(", header[header.index('extern "C" {'):], re.M))


def test_every_declared_launcher_is_defined_and_bound():
    folder = CH10 / "kernels"
    declared = _declared((folder / "launchers.h").read_text())
    defined = {m for cu in folder.glob("*.cu") for m in re.findall(r'^extern "C" cudaError_t (\w+)\(', cu.read_text(), re.M)}
    assert declared and declared == defined
    binding = (folder / "binding.cpp").read_text()
    assert all(re.search(rf"\b{name}\b", binding) for name in declared)
    for name in ("gemm_tma_wgmma_1stage", "gemm_tma_wgmma_pipelined", "gemm_warp_specialized",
                 "gemm_warp_specialized_persistent", "gemm_ws_persistent_mma_overlap", "histogram_cluster_dsmem",
                 "smooth_grid_sync"):
        assert f'm.def("{name}"' in binding


def test_wgmma_header_is_generated_and_current(tmp_path):
    """wgmma.cuh is written by gen_wgmma.py; an edit to one without the other is caught here."""
    sys.path.insert(0, str(CH10 / "kernels"))
    try:
        import gen_wgmma
    finally:
        sys.path.pop(0)
    text = gen_wgmma.HEAD + "".join(gen_wgmma.wrapper(n) for n in (256,))
    assert (CH10 / "kernels" / "wgmma.cuh").read_text() == text
    body = text[text.index("m64n256k16"):]
    assert body.count('"+f"(d[') == 128 and "%128, %129, p, 1, 1, 0, 0" in body


def test_hopper_source_is_marked_sm90a_and_guarded():
    src = (CH10 / "kernels" / "hopper_gemm.cu").read_text()
    assert "// aisp: arch sm_90a" in src and "__CUDA_ARCH_FEAT_SM90_ALL" in src
    # the shared-memory budget: 4 stages of (128 + 256) x 64 bf16 plus barriers and alignment slack <= 227 KiB
    assert 4 * (128 + 256) * 64 * 2 + 8 * 8 + 1024 <= 227 * 1024


def test_targets_name_real_examples_and_variants():
    from harness.targets import load_targets

    for example, metrics in load_targets(CH10).items():
        names = {v.name for v in _example(example).variants()}
        for metric, spec in metrics.items():
            assert spec.get("source"), f"[{example}.{metric}] needs a source"
            assert spec.get("variant") in names | {None}


def test_gemm_sweep_without_hopper_is_one_line_and_exit_2():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from ch10 import gemm_sweep

    assert gemm_sweep.main(["--size", "tiny"]) == 2
    assert len(gemm_sweep.CHECK_SHAPES) >= 3 and all(k % 8 == 0 for _, _, k in gemm_sweep.CHECK_SHAPES)


def test_gemm_sweep_plot_from_results(tmp_path):
    pytest.importorskip("matplotlib")
    from ch10 import gemm_sweep

    row = {"n": 4096, "ok": True, "ms": 0.25, "tflops": 550.0, "cublas_ms": 0.2, "cublas_tflops": 690.0,
           "vs_cublas": 0.8}
    results = [{"kernel": k, "correct": True, "rows": [row, {**row, "n": 8192}]} for k in gemm_sweep.KERNELS[:2]]
    results.append({"kernel": gemm_sweep.KERNELS[2], "correct": False, "error": "hung: no result within 90 s"})
    gemm_sweep.plot(results, str(tmp_path / "sweep.png"))
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_gpu_check_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(CH10 / "gpu_check.sh")]).returncode == 0


# ---- on a GPU ----------------------------------------------------------------------------------------

def _hopper():
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["gemm_tma_wgmma_1stage", "gemm_tma_wgmma_pipelined", "gemm_warp_specialized",
                                    "gemm_warp_specialized_persistent", "gemm_ws_persistent_mma_overlap"])
@pytest.mark.parametrize("mnk", [(128, 256, 64), (200, 300, 72), (1000, 777, 520)])
def test_hopper_gemm_matches_torch(kernel, mnk):
    if not _hopper():
        pytest.skip("needs a Hopper GPU (sm_90a: wgmma, TMA)")
    from ch10.kernels import ext

    m, n, k = mnk
    g = torch.Generator(device="cuda").manual_seed(m)
    a = (torch.randn(m, k, device="cuda", generator=g) * k ** -0.25).bfloat16()
    b = (torch.randn(n, k, device="cuda", generator=g) * k ** -0.25).bfloat16()
    torch.testing.assert_close(getattr(ext(), kernel)(a, b).float(), (a @ b.T).float(), rtol=1.6e-2, atol=1e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("n", [0, 1, 12345, 1 << 20])
def test_histograms_match_bincount(n):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from ch10.kernels import ext

    x = torch.randint(0, 4096, (n,), device="cuda", dtype=torch.int32)
    want = torch.bincount(x, minlength=4096).int()
    assert torch.equal(ext().histogram_global_atomics(x, 4096), want)
    if torch.cuda.get_device_capability() >= (9, 0):
        assert torch.equal(ext().histogram_cluster_dsmem(x, 4096), want)


@pytest.mark.gpu
@pytest.mark.parametrize("n,steps", [(1, 3), (1000, 1), (5000, 7), (1 << 20, 20)])
def test_smoothing_matches_torch(n, steps):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from ch10.grid_sync_smoothing import torch_loop
    from ch10.kernels import ext

    x = torch.randn(n, device="cuda")
    want = torch_loop({"x": x, "steps": steps})
    torch.testing.assert_close(ext().smooth_per_step(x, steps), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ext().smooth_grid_sync(x, steps), want, rtol=1e-5, atol=1e-5)


def test_run_child_reports_an_exit_and_a_deadline():
    """The one child runner of the GEMM sweeps and the megakernel check: a failed child and a hung one are
    results with their reason, not exceptions."""
    from ch10 import gemm_sweep

    failed = gemm_sweep.run_child("json.tool", "k", ["--no-such-flag"], deadline_s=30)
    assert failed["kernel"] == "k" and not failed["correct"] and failed["error"].startswith("exit 2:")
    hung = gemm_sweep.run_child("ch10.gemm_sweep", "k", [], deadline_s=0.01)
    assert hung == {"kernel": "k", "correct": False, "error": "hung: no result within 0.01 s"}
