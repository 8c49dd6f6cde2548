"""harness.inputs.refill: a timed input set takes on known contents in place, whatever setup returned."""
import pytest
import torch

from harness import inputs


def test_tensors_are_written_in_place_and_plain_values_replaced():
    target = {"x": torch.zeros(4), "scale": 1.0, "sides": (0.5, 2.0), "nested": [torch.zeros(2), 3]}
    source = {"x": torch.ones(4), "scale": 2.5, "sides": (0.7, 1.5), "nested": [torch.full((2,), 7.0), 4]}
    x, inner = target["x"], target["nested"][0]
    inputs.refill(target, source)
    assert target["x"] is x and torch.equal(x, source["x"])          # same storage, new values
    assert target["nested"][0] is inner and torch.equal(inner, source["nested"][0])
    assert target["scale"] == 2.5 and target["sides"] == (0.7, 1.5) and target["nested"][1] == 4


def test_ragged_tensors_are_replaced_in_their_dict_by_a_copy():
    target = {"values": torch.zeros(5), "offsets": torch.tensor([0, 5])}
    source = {"values": torch.arange(7.0), "offsets": torch.tensor([0, 7])}
    inputs.refill(target, source)
    assert torch.equal(target["values"], source["values"]) and target["values"] is not source["values"]
    assert torch.equal(target["offsets"], source["offsets"])


def test_a_plain_value_in_a_top_level_tuple_is_refused():
    with pytest.raises(TypeError, match="tuple"):
        inputs.refill((torch.zeros(2), 1.0), (torch.ones(2), 2.0))
