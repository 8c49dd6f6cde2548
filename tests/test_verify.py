import pytest
import torch

from harness.verify import compare, flatten, poison_allocator, snapshot, tolerance_for


def rand(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype)


def test_tolerances_follow_the_dtype():
    assert tolerance_for(torch.float32) == (1e-4, 1e-4)
    assert tolerance_for(torch.bfloat16)[0] > tolerance_for(torch.float16)[0] > tolerance_for(torch.float32)[0]
    assert tolerance_for(torch.int32) == (0.0, 0.0)


def test_equal_outputs_pass_and_report_errors():
    ref = rand(64, 64)
    out = ref + 1e-6
    c = compare([out], [ref])
    assert c.ok and 0 < c.max_abs_err < 2e-6 and c.rel_l2_err > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_a_wrong_value_fails(dtype):
    ref = rand(128, dtype=dtype)
    out = ref.clone()
    out[17] += 1.0
    c = compare([out], [ref])
    assert not c.ok and "flat index 17" in c.reason


def test_rounding_within_the_dtype_passes():
    x = rand(1000, dtype=torch.float64)
    assert compare([x.to(torch.bfloat16)], [(x * (1 + 2**-9)).to(torch.bfloat16)]).ok


def test_nan_and_inf_fail():
    ref = rand(16)
    for bad in (float("nan"), float("inf")):
        out = ref.clone()
        out[3] = bad
        c = compare([out], [ref])
        assert not c.ok and "NaN/Inf" in c.reason


def test_nan_in_the_baseline_fails_too():
    ref = rand(16)
    ref[0] = float("nan")
    assert not compare([ref.clone()], [ref]).ok


def test_shape_and_dtype_must_match_exactly():
    ref = rand(4, 4)
    assert "shape" in compare([ref.reshape(16)], [ref]).reason
    assert "dtype" in compare([ref.double()], [ref]).reason
    assert "tensors" in compare([ref, ref], [ref]).reason


def test_complex_outputs_compare_both_parts():
    ref = torch.tensor([1 + 2j, 3 + 4j])
    assert not compare([torch.tensor([1 + 0j, 3 - 9j])], [ref]).ok
    assert compare([ref.clone()], [ref]).ok


def test_large_integers_are_compared_exactly():
    ref = torch.tensor([2**53 + 1], dtype=torch.int64)
    assert not compare([torch.tensor([2**53], dtype=torch.int64)], [ref]).ok


def test_integers_must_be_exact():
    ref = torch.arange(10)
    out = ref.clone()
    out[0] += 1
    assert not compare([out], [ref]).ok


def test_structures_are_flattened_in_a_stable_order():
    a, b = rand(2), rand(3)
    assert [t.shape for t in flatten({"b": b, "a": (a,)})] == [a.shape, b.shape]
    with pytest.raises(TypeError):
        flatten(3.0)


def test_snapshot_is_a_copy():
    buf = rand(8)
    snap = snapshot(buf)
    buf.zero_()
    assert snap[0].abs().sum() > 0


@pytest.mark.gpu
def test_poisoned_allocator_makes_unwritten_outputs_nan():
    dev = torch.device("cuda")
    n = 1 << 20
    poison_allocator(dev, [n * 4])
    unwritten = torch.empty(n, device=dev)
    assert torch.isnan(unwritten).all()

