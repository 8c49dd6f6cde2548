"""Optimized variants that cheat, each run through the sweep in its own process: each must fail verification
with a reason that names what it did, and get no speedup. Honest controls beside them must pass.
"""
import textwrap

import pytest
import torch

from harness.result import ExampleResult, RunOptions
from harness.sweep import resolve, run_sweep

HEADER = """
import inspect, threading, time, torch
from harness import Example

def setup(size, device, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(4096, generator=g)}

def baseline(x):
    return torch.sigmoid(x["x"]) * 2
"""

CHEATS = {
    # answer cached on the input tensor's identity: right for the inputs it saw, stale once their contents change
    "identity_cache": ("_c = {}\ndef fast(x):\n    k = id(x['x'])\n"
                       "    if k not in _c:\n        _c[k] = torch.sigmoid(x['x']) * 2\n    return _c[k]",
                       "tim"),   # caught on a timed call or after timing, whichever comes first
    # right for the calls verification makes, then its last answer for ever
    "verify_then_replay": ("_s = {'n': 0, 'last': None}\ndef fast(x):\n    _s['n'] += 1\n"
                           "    if _s['n'] <= 12:\n        _s['last'] = torch.sigmoid(x['x']) * 2\n    return _s['last']",
                           "timed call"),
    # tells verification from timing by the call stack
    "stack_sniffer": ("def fast(x):\n    if any(f.function == '_verify' for f in inspect.stack()):\n"
                      "        return torch.sigmoid(x['x']) * 2\n    return torch.empty_like(x['x'])", "timed call"),
    # the input itself where a new tensor is due (an identity op written as .contiguous())
    "returns_input": ("def fast(x):\n    x['x'].mul_(0).add_(torch.sigmoid(x['x'].clone()) * 0)\n    return x['x'].contiguous()",
                      "input tensor 0"),
    # works in place on the caller's input without saying so
    "in_place": ("def fast(x):\n    return x['x'].sigmoid_().mul_(2)", "modified"),
    # a tensor subclass whose values could be produced when they are read, after the timer stopped
    "lazy_subclass": ("class Lazy(torch.Tensor):\n    pass\n"
                      "def fast(x):\n    return (torch.sigmoid(x['x']) * 2).as_subclass(Lazy)",
                      "subclass"),
    # the work finishes in a thread after the call returned
    "background_thread": ("def fast(x):\n    out = torch.empty_like(x['x'])\n"
                          "    late = lambda: (time.sleep(0.005), out.copy_(torch.sigmoid(x['x']) * 2))\n"
                          "    threading.Thread(target=late).start()\n"
                          "    return out", "thread"),
    # one worker thread, started by the first call (as a compiler's pool is), finishes every later call's work
    # after it returned
    # late writes: wrong values, or the poisoned NaN not yet overwritten
    "persistent_worker": ("import queue\n_q = queue.Queue()\n"
                          "def _work():\n    while True:\n        t, out = _q.get()\n"
                          "        time.sleep(0.005)\n        out.copy_(torch.sigmoid(t) * 2)\n"
                          "def fast(x):\n    if not any(t.name == 'w' for t in threading.enumerate()):\n"
                          "        threading.Thread(target=_work, name='w', daemon=True).start()\n"
                          "    out = torch.empty_like(x['x'])\n    _q.put((x['x'], out))\n    return out",
                          "differ|never written"),
    # patches what the baseline calls, so the baseline agrees with it
    "patches_baseline": ("_real = torch.sigmoid\ndef fast(x):\n    torch.sigmoid = lambda t: torch.zeros_like(t)\n"
                         "    return torch.zeros_like(x['x'])", "global state"),
}
# Cached on the data pointer and a few sampled values: defeated only by contents never seen before.
POINTER_CACHE = ("_c = {}\ndef fast(x):\n    t = x['x']\n    k = (t.data_ptr(), float(t[0]), float(t[-1]))\n"
                 "    if k not in _c:\n        _c[k] = torch.sigmoid(t) * 2\n    return _c[k]")

# The softmax whose true values are all below atol: set up separately.
WIDE = """
import torch
from harness import Example

def setup(size, device, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": 0.25 * torch.randn(2, 1 << 18, generator=g)}   # every probability is below atol (1e-4)

def baseline(x):
    return torch.softmax(x["x"], dim=1)

def fast(x):
    return torch.zeros_like(x["x"])

EXAMPLE = Example(title="wide_softmax_zeros", setup=setup, baseline=baseline, optimized={"fast": fast})
"""

# Inputs with a plain value drawn beside the tensors: checks must carry it along with the tensors' contents.
WITH_SCALAR = """
import torch
from harness import Example

def setup(size, device, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(4096, generator=g), "a": float(torch.rand((), generator=g)) + 0.5}

EXAMPLE = Example(title="honest_with_scalar", setup=setup, baseline=lambda x: x["x"] * x["a"],
                  optimized={"fast": lambda x: torch.mul(x["x"], x["a"])})
"""

CONTROLS = {
    "honest": "def fast(x):\n    return torch.sigmoid(x['x']).mul(2)",
    "honest_declared_in_place": "def fast(x):\n    return x['x'].sigmoid_().mul_(2)",
}


def _write(folder, name: str, body: str, extra_args: str = "") -> None:
    text = HEADER + body + f'\n\nEXAMPLE = Example(title="{name}", setup=setup, baseline=baseline, ' \
        f'optimized={{"fast": fast}}{extra_args})\n'
    (folder / f"{name}.py").write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cheats")
    for name, (body, _) in CHEATS.items():
        _write(folder, name, body)
    _write(folder, "pointer_sample_cache", POINTER_CACHE)
    _write(folder, "honest", CONTROLS["honest"])
    _write(folder, "honest_declared_in_place", CONTROLS["honest_declared_in_place"],
           ", mutates_inputs=True, output_may_alias_input=True")
    (folder / "wide_softmax_zeros.py").write_text(WIDE)
    (folder / "honest_with_scalar.py").write_text(WITH_SCALAR)
    refs = resolve([str(p) for p in sorted(folder.glob("*.py"))])
    opts = RunOptions(device="cpu", size="tiny", max_time_s=0.2)
    out = tmp_path_factory.mktemp("out")
    results = run_sweep(refs, opts=opts, out_dir=out, timeout=120, progress=lambda s: None)
    return {e["id"].split("/")[1]: ExampleResult.from_dict(e) for e in results["examples"]}


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_a_cheat_fails_with_a_reason_that_names_it(verdicts, name):
    res = verdicts[name]
    assert res.status == "failed", (name, res.reason)
    assert res.speedup() is None, "a cheat gets no speedup"
    fast = res.variant("fast")
    if fast is not None:
        assert not fast.verified and fast.median_ms is None
    assert any(w in res.reason.lower() for w in CHEATS[name][1].lower().split("|")), res.reason


def test_a_softmax_of_zeros_within_atol_fails_on_the_relative_error(verdicts):
    res = verdicts["wide_softmax_zeros"]
    assert res.status == "failed" and "relative L2" in res.reason


def test_honest_controls_pass(verdicts):
    for name in [*CONTROLS, "honest_with_scalar"]:
        res = verdicts[name]
        assert res.status == "ok", (name, res.reason)
        fast = res.variant("fast")
        assert fast.verified and fast.timed_checks >= 1 and fast.median_ms > 0
        assert "every timed call sees new contents" in res.input_rotation


def test_no_cheat_is_timed_with_a_speedup(verdicts):
    for name in CHEATS:
        assert verdicts[name].speedup() is None, name


def test_cheap_cache_on_the_pointer_gets_no_hits_while_timed(verdicts):
    """Every timed call sees new contents, so a cache keyed on (pointer, sampled values) never hits: it either
    fails (a stale hit on a reused pointer) or is timed as slow as the work it does."""
    res = verdicts["pointer_sample_cache"]
    assert res.status == "failed" or (res.speedup() or 0) < 3.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_relative_l2_rule_leaves_honest_rounding_alone(dtype):
    from harness.verify import compare
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1 << 16, generator=g)
    ref = (x * 1.5).to(dtype)
    out = (x.double() * 1.5).to(dtype)  # rounded once more: a last-ulp difference at most
    assert compare([out], [ref]).ok
