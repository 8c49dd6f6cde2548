"""Chapter 10's persistent megakernel: on the CPU the inputs and the PyTorch chain (activations O(1) at every
layer, the saturated inputs really saturating, float32 close to float64), the bindings and the GPU script;
on a GPU every kernel against the PyTorch chain. tests/test_cuda_compile.py compiles kernels/megakernel.cu."""
from __future__ import annotations

import subprocess

import pytest
import torch

from harness.device import REPO_ROOT
from harness.example import load_example

CH10 = REPO_ROOT / "ch10"
KERNELS = ("per_layer", "graph", "grid_sync", "split_barrier")


def _example():
    return load_example(CH10 / "persistent_megakernel.py")


def _pre_activations(inputs, dtype=torch.float64):
    """Every layer's W h + b, and the output, computed in `dtype`."""
    h, pre = inputs["x"].to(dtype), []
    for w, b in zip(inputs["w"].to(dtype), inputs["b"].to(dtype), strict=True):
        pre.append(h @ w.T + b)
        h = torch.tanh(pre[-1])
    return pre, h


def test_inputs_and_roles_on_cpu():
    ex = _example()
    assert ex.requires.cuda and ex.distributions[0] == "normal"
    roles = {v.name: v.role for v in ex.variants()}
    assert roles["launch_per_layer"] == "baseline" and roles["torch_linear_tanh"] == "reference"
    for dist in ex.distributions:
        x = ex.make_inputs("tiny", torch.device("cpu"), 0, dist)
        batch, width = x["x"].shape
        assert x["w"].shape == (x["b"].shape[0], width, width) and x["b"].shape[1] == width
        assert all(t.dtype == torch.float32 for t in x.values())
        assert 1 <= batch <= 8   # the kernels' limit
        assert (width % 4 != 0) == (dist == "ragged") and (batch % 2 == 1) == (dist == "ragged")
        assert ex.bytes_moved(x) > 4 * x["w"].numel() and ex.flops(x) == 2 * batch * width * width * x["w"].shape[0]
    again = ex.make_inputs("tiny", torch.device("cpu"), 0, "normal")
    assert torch.equal(again["w"], ex.make_inputs("tiny", torch.device("cpu"), 0, "normal")["w"])


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_activations_stay_order_one_and_float32_tracks_float64(size):
    from ch10.persistent_megakernel import torch_chain

    x = _example().make_inputs(size, torch.device("cpu"), 1, "normal")
    pre, exact = _pre_activations(x)
    for p in pre:   # every layer's input is O(1): neither dying out nor blowing up
        rms = torch.tanh(p).pow(2).mean().sqrt().item()
        assert 0.3 < rms < 0.8, rms
    got = torch_chain(x)
    assert got.dtype == torch.float32 and got.shape == x["x"].shape
    torch.testing.assert_close(got.double(), exact, rtol=0, atol=2e-5)


def test_saturated_inputs_saturate_and_stay_finite():
    from ch10.persistent_megakernel import torch_chain

    x = _example().make_inputs("small", torch.device("cpu"), 2, "saturated")
    pre, exact = _pre_activations(x)
    assert max(p.abs().max().item() for p in pre) > 45   # exp(2x) overflows float32: a naive tanh gives NaN
    assert (exact.abs() > 0.999).float().mean() > 0.5
    got = torch_chain(x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), exact, rtol=0, atol=2e-5)


def test_launchers_are_bound():
    folder = CH10 / "kernels"
    header, binding = (folder / "launchers.h").read_text(), (folder / "binding.cpp").read_text()
    source = (folder / "megakernel.cu").read_text()
    for kernel in KERNELS:
        assert f"launch_tanh_chain_{kernel}(" in header and f'extern "C" cudaError_t launch_tanh_chain_{kernel}(' in source
        assert f'm.def("tanh_chain_{kernel}"' in binding
    assert "cudaLaunchCooperativeKernel" in source   # the persistent kernels need every block resident


def test_gpu_check_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(CH10 / "gpu_check_megakernel.sh")]).returncode == 0


# ---- on a GPU ----------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("batch,width,layers", [(1, 1, 1), (3, 61, 5), (8, 1024, 9), (2, 2048, 4), (8, 4100, 2)])
def test_chain_matches_torch(kernel, batch, width, layers):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from ch10.kernels import ext
    from ch10.persistent_megakernel import torch_chain

    g = torch.Generator(device="cuda").manual_seed(batch * width + layers)
    x = {"x": torch.randn(batch, width, device="cuda", generator=g),
         "w": torch.randn(layers, width, width, device="cuda", generator=g) * width ** -0.5,
         "b": torch.randn(layers, width, device="cuda", generator=g)}
    got = getattr(ext(), f"tanh_chain_{kernel}")(x["x"], x["w"], x["b"])
    torch.testing.assert_close(got, torch_chain(x), rtol=1e-4, atol=1e-4)
    # the same row arithmetic everywhere: bitwise the baseline's answer
    assert torch.equal(got, ext().tanh_chain_per_layer(x["x"], x["w"], x["b"]))
