"""L2 cache control: keeping a reused table in L2 while a stream of data passes through it.

The pattern: `y[i] = x[i] + table[idx[i]]`, x and y streamed once (1 GiB each at full size), the table
(24 MiB: under the H200's 50 MiB L2) gathered from at random, each row about 40 times. Under the default
policy every line that enters L2 is treated alike, so the streamed x and y lines push table lines out and
gathers miss to HBM. Two ways to say which data is worth keeping:
- `evict_hints` (Triton): the streamed loads and stores carry `eviction_policy="evict_first"` and the
  table's loads `"evict_last"` (PTX `ld.global.L1::evict_first` / `evict_last`): a per-access priority;
- `access_policy_window` (CUDA runtime): the same kernel as the baseline, launched on a stream whose
  `cudaAccessPolicyWindow` covers the table with `hitProp = persisting`, after `cudaDeviceSetLimit(
  cudaLimitPersistingL2CacheSize)` sets aside that much L2 for persisting lines. Called through ctypes on
  the CUDA runtime torch has loaded (no extension to build); the persisting lines are reset after each call
  (`cudaCtxResetPersistingL2Cache`) so no other variant runs with part of the L2 held, which costs this
  variant a stream synchronize per call. H100/H200 expose a set-aside of up to ~75% of L2.
If neither helps (the hardware's default replacement may already keep hot lines), the table says so: the
book claims 1.05-1.15x for L2 control; this measures it.

Bound: x read + y written (bf16) + idx read + the table read once: ~2.03 GiB at full size: ~0.5 ms at
4.2 TB/s. With every gather missing L2 the table traffic is another ~1 GiB from HBM (~0.75 ms in all);
served from L2, gathers cost L2 bandwidth only. So the gain is bounded by ~1.5x.
"""
import ctypes  # noqa: I001 (ch14.triton_runtime must come before triton)
import ctypes.util

import torch

from ch14.triton_runtime import TRITON  # before triton: it decides compiled or interpreted
import triton
import triton.language as tl
from harness import Example, Requires, Variant, main

# (streamed rows, table rows, row width): full: 2M x 256 bf16 streamed (1 GiB), table 48K x 256 (24 MiB)
SHAPES = {"tiny": (64, 16, 32), "small": (1 << 18, 16384, 256), "full": (1 << 21, 49152, 256)}
BLOCK_ROWS = 16


def setup(size, device, seed):
    n, t, d = SHAPES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(n, d, device=device, generator=g).to(torch.bfloat16),
            "table": torch.randn(t, d, device=device, generator=g).to(torch.bfloat16),
            "idx": torch.randint(0, t, (n,), device=device, generator=g, dtype=torch.int32)}


@triton.jit
def gather_add_kernel(x_ptr, idx_ptr, table_ptr, y_ptr, n_rows, D: tl.constexpr, BLOCK_ROWS: tl.constexpr,
                      HINTS: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    rmask = rows < n_rows
    cols = tl.arange(0, D)
    m = rmask[:, None]
    offs = rows.to(tl.int64)[:, None] * D + cols[None, :]
    idx = tl.load(idx_ptr + rows, mask=rmask, other=0)
    # the sum in fp32, rounded once to bf16 (as torch's bf16 add; Triton's interpreter gets a bf16 add wrong)
    toffs = idx.to(tl.int64)[:, None] * D + cols[None, :]
    if HINTS:
        x = tl.load(x_ptr + offs, mask=m, other=0.0, eviction_policy="evict_first")
        t = tl.load(table_ptr + toffs, mask=m, other=0.0, eviction_policy="evict_last")
        tl.store(y_ptr + offs, (x.to(tl.float32) + t.to(tl.float32)).to(tl.bfloat16), mask=m, eviction_policy="evict_first")
    else:
        x = tl.load(x_ptr + offs, mask=m, other=0.0)
        t = tl.load(table_ptr + toffs, mask=m, other=0.0)
        tl.store(y_ptr + offs, (x.to(tl.float32) + t.to(tl.float32)).to(tl.bfloat16), mask=m)


def gather_add(inputs, hints: bool):
    x, table, idx = inputs["x"], inputs["table"], inputs["idx"]
    n, d = x.shape
    y = torch.empty_like(x)
    gather_add_kernel[(triton.cdiv(n, BLOCK_ROWS),)](x, idx, table, y, n, D=d, BLOCK_ROWS=BLOCK_ROWS, HINTS=hints,
                                                     num_warps=4)
    return y


# --- the CUDA runtime's access-policy window, through ctypes -----------------------------------------------
class _AccessPolicyWindow(ctypes.Structure):
    _fields_ = [("base_ptr", ctypes.c_void_p), ("num_bytes", ctypes.c_size_t), ("hitRatio", ctypes.c_float),
                ("hitProp", ctypes.c_int), ("missProp", ctypes.c_int)]


class _StreamAttrValue(ctypes.Union):  # cudaLaunchAttributeValue: 64 bytes, the window one of its members
    _fields_ = [("accessPolicyWindow", _AccessPolicyWindow), ("pad", ctypes.c_char * 64)]


ACCESS_POLICY_WINDOW, LIMIT_PERSISTING_L2, ATTR_MAX_PERSISTING_L2 = 1, 0x06, 108
NORMAL, STREAMING, PERSISTING = 0, 1, 2
_state: dict = {}


def _cudart():
    if "lib" not in _state:
        torch.cuda.init()
        import glob
        import os

        wheels = glob.glob(os.path.join(os.path.dirname(torch.__file__), "..", "nvidia", "*", "lib", "libcudart.so*"))
        # by soname first: the runtime torch already loaded is found without a path
        for name in ("libcudart.so.13", "libcudart.so.12", *sorted(wheels, reverse=True),
                     ctypes.util.find_library("cudart") or "libcudart.so"):
            try:
                _state["lib"] = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise RuntimeError("cannot load the CUDA runtime library (libcudart)")
    return _state["lib"]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        raise RuntimeError(f"{what} failed with cudaError {rc}")


def access_policy_window(inputs):
    lib, table = _cudart(), inputs["table"]
    if "stream" not in _state:
        dev = ctypes.c_int(0)
        _check(lib.cudaGetDevice(ctypes.byref(dev)), "cudaGetDevice")
        max_persist = ctypes.c_int(0)
        _check(lib.cudaDeviceGetAttribute(ctypes.byref(max_persist), ATTR_MAX_PERSISTING_L2, dev), "cudaDeviceGetAttribute")
        _state["set_aside"] = max_persist.value
        _check(lib.cudaDeviceSetLimit(LIMIT_PERSISTING_L2, ctypes.c_size_t(max_persist.value)), "cudaDeviceSetLimit")
        _state["stream"] = torch.cuda.Stream()
    stream, nbytes = _state["stream"], table.numel() * table.element_size()
    value = _StreamAttrValue()
    w = value.accessPolicyWindow
    w.base_ptr, w.num_bytes = table.data_ptr(), nbytes
    w.hitRatio = min(1.0, _state["set_aside"] / nbytes) if nbytes else 0.0  # more than the set-aside would thrash
    w.hitProp, w.missProp = PERSISTING, STREAMING
    _check(lib.cudaStreamSetAttribute(ctypes.c_void_p(stream.cuda_stream), ACCESS_POLICY_WINDOW, ctypes.byref(value)),
           "cudaStreamSetAttribute")
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = gather_add(inputs, hints=False)
    for t in (inputs["x"], inputs["table"], inputs["idx"], y):
        t.record_stream(stream)
    torch.cuda.current_stream().wait_stream(stream)
    stream.synchronize()  # then give the set-aside lines back: the next variant gets the whole L2
    _check(lib.cudaCtxResetPersistingL2Cache(), "cudaCtxResetPersistingL2Cache")
    return y


def torch_gather_add(inputs):
    return inputs["x"] + inputs["table"][inputs["idx"]]


EXAMPLE = Example(
    title="L2 control for a reused table under a stream: no hints vs Triton eviction hints vs an access-policy window",
    setup=setup,
    baseline=Variant(lambda inputs: gather_add(inputs, hints=False), requires=TRITON),
    baseline_name="no_hints",
    optimized={"evict_hints": Variant(lambda inputs: gather_add(inputs, hints=True), requires=TRITON),
               "access_policy_window": Variant(access_policy_window,
                                               requires=Requires(cuda=True, min_capability=(8, 0), packages=("triton",)),
                                               note="CUDA runtime via ctypes; syncs its stream once per call")},
    references={"torch_index_add": torch_gather_add},
    bytes_moved=lambda i: 2 * i["x"].numel() * 2 + i["idx"].numel() * 4 + i["table"].numel() * 2,
)

if __name__ == "__main__":
    main(EXAMPLE)
