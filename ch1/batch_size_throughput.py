"""Small batches vs large batches: inference throughput in samples per second.

The same two-layer MLP over the same samples, fed 8 at a time and then 512 at a time. A batch of 8
leaves the GPU's matrix units mostly idle and pays launch and Python overhead for every few samples;
a batch of 512 amortises both and turns thin matrix-vector-like products into real matrix products.
"""
import torch

from harness import Example, main

# (samples, hidden): the model is hidden -> 4*hidden -> hidden.
SHAPES = {"tiny": (256, 64), "small": (4096, 1024), "full": (16384, 4096)}
SMALL_BATCH, LARGE_BATCH = 8, 512


def setup(size, device, seed):
    n, h = SHAPES[size]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    g = torch.Generator(device=device).manual_seed(seed)
    mk = lambda *s, scale=1.0: (torch.randn(*s, device=device, generator=g) * scale).to(dtype)  # noqa: E731
    return {"x": mk(n, h), "w1": mk(h, 4 * h, scale=h ** -0.5), "w2": mk(4 * h, h, scale=(4 * h) ** -0.5)}


def mlp(x, w1, w2):
    return torch.relu(x @ w1) @ w2


def run_in_batches(x, batch):
    return torch.cat([mlp(chunk, x["w1"], x["w2"]) for chunk in x["x"].split(batch)])


EXAMPLE = Example(
    title="Inference throughput: batch 8 vs batch 512",
    setup=setup,
    baseline=lambda x: run_in_batches(x, SMALL_BATCH),
    baseline_name=f"batch_{SMALL_BATCH}",
    optimized={f"batch_{LARGE_BATCH}": lambda x: run_in_batches(x, LARGE_BATCH)},
    items=lambda x: x["x"].shape[0],
    items_unit="samples",
    flops=lambda x: 2 * 2 * x["x"].shape[0] * x["x"].shape[1] * x["w1"].shape[1],
    flops_dtype="bf16",
)

if __name__ == "__main__":
    main(EXAMPLE)
