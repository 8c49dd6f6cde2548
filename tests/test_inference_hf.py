"""The engine's decoder against transformers' Llama built from the same config and weights (tiny, CPU).

transformers is not in CI's requirements (about 200 MB installed and ~7 s to import on two cores): the logits test
skips without it; ch16/gpu_check.sh runs the same comparison at the 1B config on the GPU machine, which has it."""
import pytest
import torch

from inference.hf_compat import LAYER_NAMES, hf_name
from inference.model import CONFIGS, Decoder


def test_every_parameter_has_a_transformers_name():
    names = [hf_name(n) for n, _ in Decoder(CONFIGS["tiny"]).named_parameters()]
    assert len(set(names)) == len(names)
    assert "model.layers.1.mlp.gate_proj.weight" in names and "lm_head.weight" in names
    assert len(LAYER_NAMES) == 9


def test_logits_match_transformers():
    pytest.importorskip("transformers")
    from inference.hf_compat import compare_logits
    torch.manual_seed(0)
    model = Decoder(CONFIGS["tiny"]).eval()
    with torch.no_grad():  # non-unit norm weights, so a swapped norm would show
        for layer in model.layers:
            layer.attention_norm.weight.uniform_(0.5, 1.5)
            layer.ffn_norm.weight.uniform_(0.5, 1.5)
    res = compare_logits(model, torch.randint(0, model.cfg.vocab, (2, 48)))
    assert res["rel_diff"] < 1e-4, res
    assert res["top1_agreement"] == 1.0


def test_cli_bad_input_exits_2(capsys):
    from inference.hf_compat import main
    assert main(["--config", "70b"]) == 2
    assert main(["--dtype", "float16"]) == 2
    assert "hf_compat:" in capsys.readouterr().err
