"""Chapter 14's compiler parts and new Triton kernels on the CPU: graph breaks, recompiles, a custom backend
(all through cheap backends: Inductor on the CPU would take minutes), the layernorm backward and the L2
kernels checked in Triton's interpreter against PyTorch, and compiled for sm_90 without a GPU. (The harness
verifies those examples in full on the GPU: ch13/gpu_check.sh.)"""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch._dynamo

from harness.device import REPO_ROOT


def test_explain_finds_the_breaks_and_the_fix_has_none():
    from ch14 import graph_breaks as gb

    x, w = gb.inputs("tiny", torch.device("cpu"))
    broken, fixed = gb.explain(gb.with_breaks, x, w), gb.explain(gb.without_breaks, x, w)
    assert broken["graph_breaks"] == 2 and broken["graphs"] == 3
    assert any("item" in r for r in broken["break_reasons"]), broken["break_reasons"]
    assert fixed["graph_breaks"] == 0 and fixed["graphs"] == 1
    torch.testing.assert_close(gb.without_breaks(x, w), gb.with_breaks(x, w))
    gb.LOGGED.clear()


def test_recompiles_counted_static_vs_marked_dynamic():
    from ch13.train_common import make_model
    from ch14 import dynamic_shapes as ds

    model = make_model("tiny", torch.device("cpu")).eval()
    seqs = [torch.randint(0, model.cfg.vocab, (2, t)) for t in (32, 16)]
    with torch.no_grad():
        static = ds.run_mode("static", model, seqs, "eager")
        marked = ds.run_mode("mark_dynamic", model, seqs, "eager")
        eager = [model(s) for s in seqs]
    assert static["compiles"] == 2 and marked["compiles"] == 1
    for outs in (static["outputs"], marked["outputs"]):
        for o, e in zip(outs, eager, strict=True):
            torch.testing.assert_close(o, e)
    torch._dynamo.reset()


def test_custom_backend_sees_times_and_runs_the_graph():
    from ch14.custom_backend import InspectingBackend

    def f(x, w):
        return torch.nn.functional.gelu(x @ w).sum(-1) + 1

    backend = InspectingBackend(verbose=False)
    x, w = torch.randn(8, 16), torch.randn(16, 4)
    out = torch.compile(f, backend=backend)(x, w)
    torch._dynamo.reset()
    torch.testing.assert_close(out, f(x, w))
    (g,) = backend.graphs
    assert g["nodes"] >= 4 and "gelu" in g["code"] and len(g["call_ms"]) == 1
    assert g["slowest_nodes"] and all(ms >= 0 for _, ms in g["slowest_nodes"])


def test_cli_usage_errors_exit_2():
    from ch14 import compile_inference

    assert compile_inference.main(["--shape", "12"]) == 2
    assert compile_inference.main(["--sizes", "huge"]) == 2


def _interpreted_or_gpu():
    """Triton runs here if it was imported interpreted (conftest sets TRITON_INTERPRET without a GPU) or on a GPU."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("needs triton")
    from ch14.triton_runtime import INTERPRET

    if not INTERPRET and not torch.cuda.is_available():
        pytest.skip("triton was imported compiled and there is no GPU")
    return torch.device("cuda" if torch.cuda.is_available() and not INTERPRET else "cpu")


@pytest.mark.parametrize("dist", ["normal", "constant_rows"])
def test_layernorm_backward_kernel_matches_autograd(dist):
    device = _interpreted_or_gpu()
    from ch14 import layernorm_backward as lb

    inputs = lb.setup("tiny", device, seed=5, dist=dist)
    for ours, ref in zip(lb.fused_backward(inputs), lb.unfused_backward(inputs), strict=True):
        assert ours.shape == ref.shape and ours.dtype == ref.dtype
        torch.testing.assert_close(ours.float(), ref.float(), rtol=2e-2, atol=2e-2)


def test_l2_gather_kernels_match_torch_with_and_without_hints():
    device = _interpreted_or_gpu()
    from ch14 import l2_cache_control as l2

    inputs = l2.setup("tiny", device, seed=5)
    ref = l2.torch_gather_add(inputs)
    for hints in (False, True):  # one bf16 ulp: the interpreter's fp32 -> bf16 cast does not round to nearest
        torch.testing.assert_close(l2.gather_add(inputs, hints=hints), ref, rtol=8e-3, atol=8e-3)


COMPILE = textwrap.dedent("""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from ch14 import l2_cache_control, layernorm_backward

    def build(fn, signature, constexprs, **options):
        signature = {**signature, **{name: "constexpr" for name in constexprs}}
        src = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
        return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]

    i32 = lambda *names: {n: "i32" for n in names}
    build(layernorm_backward.layernorm_bwd_kernel, {"x_ptr": "*bf16", "w_ptr": "*bf16", "dy_ptr": "*bf16",
          "dx_ptr": "*bf16", "dw_part_ptr": "*fp32", "db_part_ptr": "*fp32",
          **i32("n_rows", "n_cols", "rows_per_program", "stride"), "eps": "fp32"}, {"BLOCK": 4096}, num_warps=8)
    sig = {"x_ptr": "*bf16", "idx_ptr": "*i32", "table_ptr": "*bf16", "y_ptr": "*bf16", "n_rows": "i32"}
    hinted = build(l2_cache_control.gather_add_kernel, sig, {"D": 256, "BLOCK_ROWS": 16, "HINTS": True})
    assert "evict_first" in hinted and "evict_last" in hinted, "eviction hints expected in the PTX"
    print("compiled")
""")


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
def test_new_kernels_compile_for_sm90_with_their_hints():
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", COMPILE], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-3000:]
