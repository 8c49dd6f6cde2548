"""The decoder: incremental decoding with the cache equals a full forward pass; sizes of the real configs."""
import torch

from inference.model import CONFIGS, Decoder


def test_cached_decode_matches_full_forward():
    torch.manual_seed(0)
    model = Decoder(CONFIGS["tiny"]).eval()
    tokens = torch.randint(0, model.cfg.vocab, (2, 12))
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_cache(batch=2, max_seq=32)
        steps = [model(tokens[:, :5], cache=cache, start_pos=0)]
        steps += [model(tokens[:, i:i + 1], cache=cache, start_pos=i) for i in range(5, 9)]
        steps.append(model(tokens[:, 9:], cache=cache, start_pos=9))  # a chunk after a prefix: masked, not causal
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)


def test_parameter_counts_of_the_real_configs():
    # Llama 3.2 1B ties its embedding and head (1.24B); untied here: + vocab*dim.
    assert abs(CONFIGS["1b"].n_params() - (1.236e9 + 128256 * 2048)) / 1.5e9 < 0.01
    assert abs(CONFIGS["8b"].n_params() - 8.03e9) / 8.03e9 < 0.01
    tiny = Decoder(CONFIGS["tiny"])
    assert sum(p.numel() for p in tiny.parameters()) == CONFIGS["tiny"].n_params()
