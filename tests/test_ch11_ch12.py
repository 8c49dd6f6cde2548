"""Chapters 11 and 12 without a GPU: the overlap measure on synthetic traces, the timeline picture, the
examples' inputs and PyTorch computations on the CPU, the device-runtime library's -rdc build, and the
declared launchers. The GPU parts are run by ch11/gpu_check.sh (and the `gpu` tests at the end)."""
from __future__ import annotations

import json
import re

import pytest
import torch

from ch11 import timeline
from harness import cuda_build
from harness.device import REPO_ROOT
from harness.example import load_example

CPU = torch.device("cpu")


# ---- the overlap measure -------------------------------------------------------------------------

def event(cat, name, ts, dur, stream, device=0):
    return {"ph": "X", "cat": cat, "name": name, "pid": device, "tid": stream, "ts": ts, "dur": dur,
            "args": {"device": device, "stream": stream}}


H2D, D2H = "Memcpy HtoD (Pinned -> Device)", "Memcpy DtoH (Device -> Pinned)"


def test_gpu_ops_reads_kinds_streams_and_ignores_the_rest():
    trace = {"traceEvents": [
        event("kernel", "k", 10, 5, 7),
        event("gpu_memcpy", H2D, 0, 10, 13),
        event("gpu_memcpy", D2H, 20, 4, 13),
        event("gpu_memcpy", "Memcpy DtoD (Device -> Device)", 30, 1, 7),
        event("gpu_memset", "Memset (Device)", 31, 1, 7),
        event("cpu_op", "aten::mm", 0, 100, 1),
        {"ph": "M", "name": "process_name", "pid": 0, "args": {"name": "python"}},
    ]}
    ops = timeline.gpu_ops(trace)
    assert [o.kind for o in ops] == ["h2d", "kernel", "d2h", "d2d", "memset"]
    assert [o.stream for o in ops] == [13, 7, 13, 7, 7]
    assert ops[0].dur_us == 10 and ops[1].end_us == 15


def test_merge_and_covered():
    merged = timeline.merge([(5, 8), (0, 2), (1, 3), (8, 9), (4, 4)])
    assert merged == [(0, 3), (5, 9)]
    assert timeline.covered(2, 6, merged) == 1 + 1
    assert timeline.covered(10, 20, merged) == 0
    assert timeline.covered(-1, 100, merged) == 7


def test_one_stream_hides_nothing():
    # copy in, kernel, copy out, one after the other, twice
    ops = timeline.gpu_ops({"traceEvents": [
        event("gpu_memcpy", H2D, 0, 10, 7), event("kernel", "k", 10, 10, 7), event("gpu_memcpy", D2H, 20, 10, 7),
        event("gpu_memcpy", H2D, 30, 10, 7), event("kernel", "k", 40, 10, 7), event("gpu_memcpy", D2H, 50, 10, 7),
    ]})
    s = timeline.overlap_summary(ops)
    assert s["copy_us"] == 40 and s["kernel_us"] == 20 and s["hidden_us"] == 0 and s["overlap_fraction"] == 0
    assert s["hideable"] == 1.0 and s["span_us"] == 60 and s["serial_us"] == 60 and s["stream_ids"] == [7]


def test_pipelined_streams_hide_copies_under_kernels():
    # stream 1: chunk 0; stream 2: chunk 1, its copy in running under chunk 0's kernel, and so on
    ops = timeline.gpu_ops({"traceEvents": [
        event("gpu_memcpy", H2D, 0, 10, 1), event("kernel", "k0", 10, 10, 1), event("gpu_memcpy", D2H, 20, 10, 1),
        event("gpu_memcpy", H2D, 10, 10, 2), event("kernel", "k1", 20, 10, 2), event("gpu_memcpy", D2H, 30, 10, 2),
    ]})
    s = timeline.overlap_summary(ops)
    # hidden: chunk 1's copy in (10 us under k0) and chunk 0's copy out (10 us under k1); 20 of 40
    assert s["hidden_us"] == 20 and s["overlap_fraction"] == 0.5
    assert s["by_direction"]["h2d"]["overlap_fraction"] == 0.5 and s["by_direction"]["d2h"]["overlap_fraction"] == 0.5
    assert s["span_us"] == 40 and s["serial_us"] == 60


def test_concurrent_kernels_count_once_and_devices_apart():
    ops = timeline.gpu_ops({"traceEvents": [
        event("kernel", "a", 0, 10, 1), event("kernel", "b", 5, 10, 2),          # union: 15 us
        event("gpu_memcpy", H2D, 0, 20, 3),                                      # 15 of 20 under kernels
        event("gpu_memcpy", D2H, 0, 20, 3, device=1),                            # another GPU: no kernel there
    ]})
    s = timeline.overlap_summary(ops)
    assert s["kernel_us"] == 15 and s["hidden_us"] == 15 and s["copy_us"] == 40
    assert s["by_direction"]["d2h"]["hidden_us"] == 0


def test_no_copies_gives_no_fraction():
    s = timeline.overlap_summary(timeline.gpu_ops({"traceEvents": [event("kernel", "k", 0, 1, 1)]}))
    assert s["overlap_fraction"] is None and s["hideable"] is None


def test_overlap_of_a_recorded_gpu_trace():
    """The parser on a real H200 torch profiler trace (kernels only): every kernel found, no copies."""
    trace = json.loads((REPO_ROOT / "tests/fixtures/profiling/gpu_trace/trace.json").read_text())
    ops = timeline.gpu_ops(trace)
    kernels = [e for e in trace["traceEvents"] if e.get("cat") == "kernel"]
    assert len([o for o in ops if o.kind == "kernel"]) == len(kernels) > 0
    assert timeline.overlap_summary(ops)["overlap_fraction"] is None


def test_timeline_png(tmp_path):
    lanes = timeline.gpu_ops({"traceEvents": [
        event("gpu_memcpy", H2D, 0, 10, 1), event("kernel", "k", 10, 10, 1), event("gpu_memcpy", D2H, 20, 10, 1),
        event("gpu_memcpy", H2D, 10, 10, 2), event("kernel", "k", 20, 10, 2), event("gpu_memcpy", D2H, 30, 10, 2),
    ]})
    out = timeline.draw([("one stream", lanes[:3]), ("two streams", lanes)], tmp_path / "t.png", title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


# ---- the examples on the CPU ---------------------------------------------------------------------

def examples(chapter: str):
    return sorted(p for p in (REPO_ROOT / chapter).glob("*.py") if "EXAMPLE = Example(" in p.read_text())


@pytest.mark.parametrize("path", examples("ch11") + examples("ch12"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_examples_declare_cuda_and_set_up_on_the_cpu(path):
    ex = load_example(path)
    assert ex.requires.cuda, "streams, graphs and device launches have no CPU meaning: skipped there with the reason"
    assert ex.requires.unmet(CPU) == "needs CUDA"
    doc = path.read_text().split('"""')[1]
    assert "Bound" in doc or "bound" in doc, "each example states its bound"
    for dist in ex.distributions or (None,):
        inputs = ex.make_inputs("tiny", CPU, 3, dist)
        assert any(isinstance(v, torch.Tensor) for v in inputs.values())


def test_overlap_pipeline_computation_on_the_cpu():
    from ch11 import stream_overlap as so

    x = so.setup("tiny", CPU, 0)
    out = so.reference(x)
    chunks = torch.stack([so.compute(c, x["weight"], x["matmuls"]) for c in x["host"]])
    torch.testing.assert_close(out, chunks)  # chunking does not change the answer
    assert out.abs().max() < 1 and so.EXAMPLE.bytes_moved(x) == x["host"].numel() * 4


def test_decode_step_on_the_cpu_and_from_static_buffers():
    from ch11 import cuda_graphs_decode as cg

    x = cg.setup("tiny", CPU, 0)
    out = cg.eager(x)
    batch, dim = x["x"].shape
    assert out.shape == (batch, dim) and torch.isfinite(out).all()
    static = {k: torch.zeros_like(v) for k, v in x.items()}  # what a replay reads: this call's inputs copied in
    for k in static:
        static[k].copy_(x[k])
    assert torch.equal(cg.decode_step(**static), out)
    # every weight is used: changing one layer's output projection changes the answer
    changed = {**x, "params": x["params"].clone()}
    cg.unpack(changed["params"], dim, cg.SIZES["tiny"][5], cg.SIZES["tiny"][4])[-1]["wo"].mul_(2)
    assert not torch.equal(cg.eager(changed), out)


def test_events_example_computations_on_the_cpu():
    from ch11 import events_vs_sync as ev

    x = ev.setup("tiny", CPU, 0)
    out = ev.one_stream(x)
    expected = torch.tanh((torch.sin(x["items"]) * 2.0 + 0.5) @ x["weight"])
    torch.testing.assert_close(out, expected)


def test_allocator_loop_reference_and_fragmentation_figures():
    from ch11 import allocator_fragmentation as af
    from ch11 import stream_ordered_allocator as so

    x = so.setup("tiny", CPU, 0)
    expected = sum(x["x"] * (it + 1) + 1 for it in range(x["iters"]))
    torch.testing.assert_close(so.reference(x), expected)
    sizes = af.workload_sizes(10, seed=1)
    assert sizes == af.workload_sizes(10, seed=1) and all(64 * af.MIB <= a <= 512 * af.MIB for a, _ in sizes)
    stats = {"allocated_bytes.all.peak": 100 * af.MIB, "reserved_bytes.all.peak": 400 * af.MIB,
             "allocated_bytes.all.current": 30 * af.MIB, "reserved_bytes.all.current": 120 * af.MIB,
             "segment.all.current": 4, "num_device_alloc": 9}
    f = af.fragmentation(stats)
    assert f["reserved_over_allocated_at_peak"] == 4 and f["fragmentation"] == 0.75 and f["segments"] == 4
    assert af.fragmentation({})["fragmentation"] == 0.0


def test_graph_chain_reference_is_the_fma_chain():
    from ch12 import graph_chain as gc

    x = {"x": torch.tensor([3.0]), "n": 5}
    v = 3.0
    for _ in range(5):
        v = v * 0.5 + 1.0
    assert float(gc.reference(x)) == pytest.approx(v, rel=1e-7)


@pytest.mark.parametrize("dist", ["clustered", "powerlaw", "uniform"])
def test_work_queue_inputs_and_torch_reference(dist):
    from ch12 import atomic_work_queue as wq

    x = wq.setup("tiny", CPU, 0, dist=dist)
    lengths, offsets = x["lengths"], x["offsets"]
    assert offsets[0] == 0 and torch.equal(offsets[1:] - offsets[:-1], lengths) and (lengths >= 1).all()
    if dist == "clustered":
        assert torch.equal(lengths, lengths.sort(descending=True).values)
    got = wq.torch_segment_reduce(x)
    want = torch.stack([torch.sqrt(x["values"][a:b] ** 2 + 1).sum() for a, b in zip(offsets[:-1], offsets[1:])])
    torch.testing.assert_close(got, want)


def test_work_queue_lengths_are_heavy_tailed_at_full_size():
    from ch12 import atomic_work_queue as wq

    lengths = wq.row_lengths(1 << 17, 512, "powerlaw", torch.Generator().manual_seed(0))
    assert lengths.max() > 50 * lengths.float().median()


def test_jacobi_reference_converges_in_a_data_dependent_number_of_sweeps():
    from ch12 import conditional_while as cw

    sweeps = set()
    for seed in range(3):
        x = cw.setup("tiny", CPU, seed)
        v, n = cw.jacobi_reference(x)
        padded = torch.nn.functional.pad(v, (1, 1))
        residual = x["diag"] * v - padded[:-2] - padded[2:] - x["b"]
        assert residual.abs().max() < 1e-3 and 10 < int(n) < cw.MAX_ITERS
        sweeps.add(int(n))
    assert len(sweeps) > 1


# ---- the CUDA sources ------------------------------------------------------------------------------

def _declared(header: str) -> set[str]:
    body = header[header.index('extern "C" {'):]
    return set(re.findall(r"^\s*(?:cudaError_t|int|int64_t)\s+(\w+)\(", body, re.M))


@pytest.mark.parametrize("chapter", ["ch11", "ch12"])
def test_every_declared_launcher_is_defined_and_bound(chapter):
    folder = REPO_ROOT / chapter / "kernels"
    declared = _declared((folder / "launchers.h").read_text())
    defined = {m for cu in folder.glob("*.cu")
               for m in re.findall(r'^extern "C" (?:cudaError_t|int|int64_t) (\w+)\(', cu.read_text(), re.M)}
    assert declared and declared == defined
    binding = (folder / "binding.cpp").read_text()
    assert not [n for n in declared if not re.search(rf"\b{n}\b", binding)]


def test_rdc_exports_match_ctypes_wrapper():
    from ch12 import kernels

    declared = _declared((kernels.RDC_DIR / "rdc.h").read_text()) | {"aisp_error_string"}
    defined = {m for cu in kernels.rdc_sources()
               for m in re.findall(r'^extern "C" (?:int|const char\*) (\w+)\(', cu.read_text(), re.M)}
    assert declared == defined
    wrapper = (REPO_ROOT / "ch12/kernels/__init__.py").read_text()
    assert all(name in wrapper for name in declared)


def test_cu_files_are_found_by_the_ci_compile():
    ours = {p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob("ch*/**/*.cu")}
    assert {"ch11/kernels/overlap_pipeline.cu", "ch12/kernels/graph_chain.cu",
            "ch12/kernels/rdc/cdp_mariani_silver.cu", "ch12/kernels/rdc/device_graph_launch.cu"} <= ours
    assert {f.relative_to(REPO_ROOT).as_posix() for f in cuda_build.extension_dirs()} >= {"ch11/kernels", "ch12/kernels"}


NVCC = cuda_build.find_nvcc()


@pytest.mark.skipif(NVCC is None, reason="nvcc not found (set CUDA_HOME or put nvcc on PATH)")
def test_rdc_library_builds_with_relocatable_device_code(tmp_path):
    """What a plain `nvcc -c` cannot check: the device-side launches compile with -rdc=true and the
    library device-links against cudadevrt (sm_90 only, to keep CI short; linking needs no GPU)."""
    from ch12 import kernels

    lib = kernels.build_rdc("sm_90", nvcc=NVCC, root=tmp_path)
    assert lib.exists() and lib.stat().st_size > 0
    assert kernels.build_rdc("sm_90", nvcc=NVCC, root=tmp_path) == lib  # cached: same key, no rebuild
    cmd = kernels.rdc_command(NVCC, "sm_90", tmp_path / "x.so")
    assert "-rdc=true" in cmd and "-lcudadevrt" in cmd and cuda_build.gencode("sm_90") in cmd


@pytest.mark.gpu
def test_rdc_library_runs_and_agrees_with_the_host_versions():
    from ch12 import device_graph_launch as dgl
    from ch12 import dynamic_parallelism as dp
    from ch12.kernels import ext, rdc

    args = dp._args(dp.setup("tiny", torch.device("cuda"), 0))
    assert torch.equal(rdc().mariani_silver_cdp(*args), ext().mariani_silver_multipass(*args))
    for seed in (0, 1):
        x = dgl.setup("tiny", torch.device("cuda"), seed)
        assert torch.equal(rdc().route(x["x"], on_device=True), rdc().route(x["x"], on_device=False))
