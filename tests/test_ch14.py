"""Chapter 14's Triton kernels: run in the interpreter on the CPU, and compiled for sm_90 without a GPU."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness.device import REPO_ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
EXAMPLES = ["fused_softmax", "layernorm", "matmul_autotune", "persistent_tma_matmul", "fp8_matmul"]


# Triton reads TRITON_INTERPRET once, when `triton` is first imported; in the pytest process something may
# have imported it already (the harness records its version), so the interpreter runs in a fresh process.
VERIFY = textwrap.dedent("""
    import json, sys
    from harness.device import REPO_ROOT, pick_device
    from harness.example import load_example
    from harness.runner import run_example
    from harness.timing import TimingConfig
    quick = TimingConfig(warmup_s=0.0, min_warmup_calls=1, min_samples=3, min_time_s=0.0, max_time_s=0.05)
    rows = {}
    for name in sys.argv[1:]:
        result = run_example(load_example(REPO_ROOT / "ch14" / f"{name}.py"), device=pick_device("auto"),
                             size="tiny", seed=7, timing=quick, example_id=f"ch14/{name}")
        rows[name] = [result.status, result.reason, [(v.name, v.status, bool(v.verified), v.reason)
                                                     for v in result.variants]]
    print(json.dumps(rows))
""")


def test_triton_variants_verified_at_tiny_size():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("TRITON_INTERPRET", None)   # ch14.triton_runtime sets it where there is no GPU
    proc = subprocess.run([sys.executable, "-c", VERIFY, *EXAMPLES], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, (status, reason, variants) in rows.items():
        assert status == "ok", f"{name}: {reason}"
        triton_rows = [v for v in variants if v[0].startswith(("triton", "persistent", "tiled"))]
        assert triton_rows and all(v[2] for v in triton_rows), f"{name}: {triton_rows}"


COMPILE = textwrap.dedent("""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from ch14 import fp8_matmul, fused_softmax, layernorm, matmul_autotune, persistent_tma_matmul

    def build(fn, signature, constexprs, arch=90, **options):
        signature = {**signature, **{name: "constexpr" for name in constexprs}}
        src = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
        return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options).asm["ptx"]

    i32 = lambda *names: {n: "i32" for n in names}
    build(fused_softmax.softmax_kernel, {"x_ptr": "*fp32", "y_ptr": "*fp32", **i32("n_cols", "stride_x", "stride_y")},
          {"BLOCK": 4096}, num_warps=8)
    build(layernorm.layernorm_kernel, {"x_ptr": "*bf16", "w_ptr": "*bf16", "b_ptr": "*bf16", "y_ptr": "*bf16",
          **i32("n_cols", "stride_x", "stride_y"), "eps": "fp32"}, {"BLOCK": 4096}, num_warps=8)
    gemm = {"M", "N", "K", "stride_am", "stride_ak", "stride_bk", "stride_bn", "stride_cm", "stride_cn"}
    plain = dict(matmul_autotune.GPU_CONFIGS[0].kwargs, UPCAST=False)
    ptx = build(matmul_autotune.matmul_kernel, {"a_ptr": "*bf16", "b_ptr": "*bf16", "c_ptr": "*bf16", **i32(*gemm)},
                plain, num_warps=8, num_stages=3)
    assert "wgmma" in ptx, "bf16 tl.dot should be wgmma on sm_90"
    tile = dict(persistent_tma_matmul.GPU_TILE)
    warps, stages = tile.pop("num_warps"), tile.pop("num_stages")
    bm, bn, bk = tile["BLOCK_M"], tile["BLOCK_N"], tile["BLOCK_K"]
    desc = lambda r, c: f"tensordesc<bf16[{r}, {c}]>"
    ptx = build(persistent_tma_matmul.persistent_tma_kernel,
                {"a_desc": desc(bm, bk), "b_desc": desc(bk, bn), "c_desc": desc(bm, bn), **i32("M", "N", "K")},
                dict(tile, NUM_PROGRAMS=132, UPCAST=False), num_warps=warps, num_stages=stages)
    assert "cp.async.bulk.tensor" in ptx and "wgmma" in ptx, "TMA loads and wgmma expected on sm_90"
    ptx = build(fp8_matmul.fp8_matmul_kernel, {"a_ptr": "*fp8e4nv", "b_ptr": "*fp8e4nv", "c_ptr": "*bf16",
                "scale_a_ptr": "*fp32", "scale_b_ptr": "*fp32", **i32("M", "N", "K", "stride_am", "stride_bn", "stride_cm")},
                dict(fp8_matmul.GPU_CONFIGS[0].kwargs, UPCAST=False), num_warps=8, num_stages=3)
    assert "wgmma" in ptx and "e4m3" in ptx, "an e4m3 wgmma expected on sm_90"
    print("compiled")
""")


def test_kernels_compile_for_sm90_without_a_gpu():
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", COMPILE], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-3000:]
