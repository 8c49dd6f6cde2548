"""Chapters 2 and 5's examples beyond the generic run in test_examples.py: targets name real variants,
ch2's launchers are declared, defined and bound, the CPU-side pieces of the GPU examples work, and on
a GPU the managed-memory and pointer-chase bindings do what they say."""
from __future__ import annotations

import re

import pytest
import torch

from harness.device import REPO_ROOT
from harness.example import load_example



def test_ch2_launchers_declared_defined_and_bound():
    folder = REPO_ROOT / "ch2" / "kernels"
    header = (folder / "launchers.h").read_text()
    declared = set(re.findall(r"^\s*cudaError_t\s+(\w+)\(", header[header.index('extern "C" {'):], re.M))
    defined = {m for cu in folder.glob("*.cu") for m in re.findall(r'^extern "C" cudaError_t (\w+)\(', cu.read_text(), re.M)}
    assert declared and declared == defined
    binding = (folder / "binding.cpp").read_text()
    assert all(re.search(rf"\b{name}\b", binding) for name in declared)


def test_gpu_examples_say_why_they_skip_on_the_cpu():
    cpu = torch.device("cpu")
    for name in ("managed_memory", "latency_hiding", "coherent_memory"):
        ex = load_example(REPO_ROOT / "ch2" / f"{name}.py")
        assert ex.requires.unmet(cpu) == "needs CUDA"
    for name, pkg in (("gpu_decode", "torchvision"), ("gds_read", "kvikio")):
        reason = load_example(REPO_ROOT / "ch5" / f"{name}.py").requires.unmet(cpu)
        assert reason and (pkg in reason or "CUDA" in reason)


def test_latency_hiding_setup_and_torch_reference_on_cpu():
    ex = load_example(REPO_ROOT / "ch2" / "latency_hiding.py")
    x = ex.setup("tiny", torch.device("cpu"), 0)
    assert sorted(x["next"].tolist()) == list(range(x["next"].numel()))   # a permutation: every chain stays in range
    out = ex.references["torch_gather"].fn(x)
    p = x["start"][5].item()
    for _ in range(x["hops"]):
        p = x["next"][p].item()
    assert out.dtype == torch.int32 and out[5].item() == p
    assert ex.teaching_baseline and len(ex.optimized) == 4


def test_gds_file_and_page_cache_drop(tmp_path):
    from ch5.gds_read import DataFile

    f = DataFile(3 << 20, seed=1)
    f.drop_from_page_cache()   # allowed on one's own file, no privileges
    with open(f.path, "rb") as fh:
        assert len(fh.read()) == 3 << 20


@pytest.mark.gpu
def test_managed_buffer_views_and_hints():
    from ch2.kernels import ext
    from ch2.managed_memory import ADVISE_ACCESSED_BY, ADVISE_PREFERRED_LOCATION, HOST

    dev = ext().managed_empty(1 << 20, 0)
    host = ext().host_view(dev)
    host.copy_(torch.arange(1 << 20, dtype=torch.float32))
    ext().prefetch(dev, 0)
    assert torch.equal(dev.sum().cpu(), torch.arange(1 << 20, dtype=torch.float32).sum())
    ext().prefetch(dev, HOST)
    torch.cuda.synchronize()
    ext().advise(dev, ADVISE_PREFERRED_LOCATION, HOST)
    ext().advise(dev, ADVISE_ACCESSED_BY, 0)
    del dev
    assert host[7].item() == 7.0   # the host view keeps the allocation alive


@pytest.mark.gpu
def test_chase_matches_torch_at_every_residency():
    from ch2.kernels import ext
    from ch2.latency_hiding import WARPS, setup, torch_gather

    x = setup("small", torch.device("cuda"), 3)
    want = torch_gather(x)
    for name, cap in WARPS.items():
        assert torch.equal(ext().chase(x["next"], x["start"], x["hops"], cap), want), name
        launched, most, warp, sms = ext().chase_occupancy(cap)
        assert warp == 32 and launched == (cap or most) and sms > 0
